//! The operator trait.

use bytes::Bytes;

use crate::config::ConfigError;
use crate::context::Context;
use crate::record::Record;

/// Name and streams of an operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Operator kind, e.g. `keyed-count`.
    pub name: String,
    /// Input stream names it consumes (informational; edges come from the topology).
    pub inputs: Vec<String>,
    /// Output stream names it produces with [`Context::produce`].
    pub outputs: Vec<String>,
}

/// A failure inside an operator callback.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Bad configuration (reported at `init`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, with a message.
    #[error("{0}")]
    Failed(String),
}

impl OperatorError {
    /// An error with a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

/// A stream operator. All callbacks of one instance run on one thread, one at a time.
pub trait Operator: Send {
    /// Name, input and output streams.
    fn metadata(&self) -> Metadata;

    /// Called once before any record or timer.
    fn init(&mut self, _ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called once when the instance stops (e.g. on SIGTERM). Output is no longer possible.
    fn destroy(&mut self) {}

    /// Called for every input record.
    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError>;

    /// Called when a timer set with [`Context::set_timer`] is due. Timers fire in time order.
    fn process_timer(
        &mut self,
        _ctx: &mut Context<'_>,
        _key: Bytes,
        _time: u64,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called after each batch of records and timers has been handed to the operator,
    /// before output is flushed. Operators that batch internally flush here.
    fn end_of_batch(&mut self, _ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Under at-least-once delivery, called before the host acknowledges the records
    /// processed so far: make their effects outside Concord durable (flush a producer or
    /// a file) and return an error if some of them were not. Records emitted with
    /// [`Context::produce`] are the host's concern, not this method's.
    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }
}
