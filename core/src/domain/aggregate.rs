//! The one shape every aggregate has (after cqrs-es `Aggregate`): a state folded from its
//! stream by [`Aggregate::apply`], which holds no rules, and [`Aggregate::decide`], which holds
//! all of them and turns a command into the events to append.
//!
//! The application layer runs every write of every aggregate through one generic path (fold or
//! read the state, `decide`, append expecting [`Aggregate::version`]), and the given/when/then
//! harness of the domain's tests is generic over this trait too.

use std::borrow::Borrow;

use super::DomainError;
use crate::event::Event;

/// An aggregate: the consistency boundary of one stream.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// What may be asked of it.
    type Command: Send;
    /// What its rules need to look up outside its own stream (the servers that exist, a policy
    /// validator); `()` when nothing.
    type Services: ?Sized;

    /// Folds one recorded event into the state. Holds no rules; events of other aggregates are
    /// ignored.
    fn apply(&mut self, event: &Event);

    /// The rules: the events that `command` causes, or the first rule it breaks.
    fn decide(
        &self,
        command: Self::Command,
        services: &Self::Services,
    ) -> Result<Vec<Event>, DomainError>;

    /// How many events of the stream were folded: the version an append must expect.
    fn version(&self) -> u64;

    /// Folds a stream's events, oldest first.
    fn fold<I>(events: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<Event>,
    {
        let mut state = Self::default();
        for event in events {
            state.apply(event.borrow());
        }
        state
    }
}
