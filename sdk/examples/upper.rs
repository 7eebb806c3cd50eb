//! A Rust operator run out of process: upper-cases every value.
//!
//! Build with `cargo build -p concord-sdk --example upper` and use the binary as a
//! `process` runtime: `{"process": {"command": "/path/to/upper"}}`.

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};

struct Upper;

impl Operator for Upper {
    fn metadata(&self) -> Metadata {
        Metadata {
            name: "upper".into(),
            inputs: vec!["in".into()],
            outputs: vec!["out".into()],
        }
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        ctx.produce("out", &record.key, record.value.to_ascii_uppercase());
        Ok(())
    }
}

fn main() {
    if let Err(e) = concord_sdk::process::run(Upper) {
        eprintln!("upper: {e}");
        std::process::exit(1);
    }
}
