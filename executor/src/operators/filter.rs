//! `filter`: passes records that match, unchanged.
//!
//! Exactly one condition: `field` + `equals` / `notEquals` (JSON field comparison),
//! `regex` (on `field`'s text, or on the whole value when no field is given), or `expr`
//! (e.g. `count >= 5 && url contains /ad/`).

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use regex::Regex;
use serde_json::Value;

use super::json::{self, Expr};
use super::{OUT, meta};

enum Cond {
    All,
    Equals(String, Value, bool),
    Regex(Option<String>, Regex),
    Expr(Expr),
}

/// The `filter` built-in.
pub struct Filter {
    cond: Cond,
}

impl Default for Filter {
    fn default() -> Self {
        Self { cond: Cond::All }
    }
}

impl Operator for Filter {
    fn metadata(&self) -> Metadata {
        meta("filter", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        let field = c.str("field")?;
        self.cond = if let Some(re) = c.str("regex")? {
            let re = Regex::new(&re).map_err(|e| OperatorError::msg(format!("regex: {e}")))?;
            Cond::Regex(field, re)
        } else if let Some(e) = c.str("expr")? {
            Cond::Expr(Expr::parse(&e).map_err(|e| OperatorError::msg(e.to_string()))?)
        } else if let Some(v) = c.get("equals") {
            let f = field.ok_or_else(|| OperatorError::msg("`equals` needs `field`"))?;
            Cond::Equals(f, v.clone(), true)
        } else if let Some(v) = c.get("notEquals") {
            let f = field.ok_or_else(|| OperatorError::msg("`notEquals` needs `field`"))?;
            Cond::Equals(f, v.clone(), false)
        } else {
            return Err(OperatorError::msg(
                "filter needs one of `regex`, `expr`, `equals` or `notEquals`",
            ));
        };
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let pass = match &self.cond {
            Cond::All => true,
            Cond::Regex(None, re) => re.is_match(&String::from_utf8_lossy(&record.value)),
            Cond::Regex(Some(f), re) => parse(&record)?
                .as_ref()
                .and_then(|d| json::get(d, f))
                .is_some_and(|v| re.is_match(&json::as_text(v))),
            Cond::Equals(f, v, want) => {
                let doc = parse(&record)?;
                let eq = doc
                    .as_ref()
                    .and_then(|d| json::get(d, f))
                    .is_some_and(|x| json::loosely_equal(x, v));
                eq == *want
            }
            Cond::Expr(e) => parse(&record)?.as_ref().is_some_and(|d| e.eval(d)),
        };
        if pass {
            ctx.produce(OUT, &record.key, &record.value);
        }
        Ok(())
    }
}

fn parse(record: &Record) -> Result<Option<Value>, OperatorError> {
    serde_json::from_slice(&record.value)
        .map(Some)
        .map_err(|e| OperatorError::msg(format!("value is not JSON: {e}")))
}
