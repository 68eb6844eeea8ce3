//! A given/when/then harness for the aggregates' rules (after cqrs-es `test/framework.rs`):
//!
//! ```text
//! given([ServerAdded ...]).when(UpdateServer { .. }).then_expect([ServerUpdated ..]);
//! given_no_events().with_servers(directory).when(AddPortal { .. }).then_expect_error(err);
//! ```
//!
//! `given` folds the events with the aggregate's `apply`, `when` runs its `decide`, and the
//! `then_*` methods assert on the outcome.

use std::collections::BTreeMap;

use super::DomainError;
use super::ids::ServerId;
use super::portal::{
    self, AddPortal, PortalCommand, PortalState, RemovePortal, ServerFacts, UpdatePortal,
};
use super::server::{
    self, AddServer, RecordSync, RemoveServer, ServerCommand, ServerState, UpdateServer,
};
use crate::event::Event;

/// The history of one aggregate's stream.
pub(crate) fn given(events: impl IntoIterator<Item = Event>) -> Given {
    Given { events: events.into_iter().collect(), servers: BTreeMap::new() }
}

/// An aggregate with no history.
pub(crate) fn given_no_events() -> Given {
    given([])
}

/// A history, and the servers a portal's rules may look up.
#[derive(Debug)]
pub(crate) struct Given {
    events: Vec<Event>,
    servers: BTreeMap<ServerId, ServerFacts>,
}

impl Given {
    /// The servers that exist, for portal commands.
    pub(crate) fn with_servers(mut self, servers: BTreeMap<ServerId, ServerFacts>) -> Self {
        self.servers = servers;
        self
    }

    /// Decides `command` against the folded history.
    pub(crate) fn when(self, command: impl Into<TestCommand>) -> Outcome {
        let result = match command.into() {
            TestCommand::Server(command) => {
                server::decide(&ServerState::from_events(&self.events), command)
            }
            TestCommand::Portal(command) => {
                portal::decide(&PortalState::from_events(&self.events), command, &self.servers)
            }
        };
        Outcome { result }
    }
}

/// A command of either aggregate.
#[derive(Debug)]
pub(crate) enum TestCommand {
    Server(ServerCommand),
    Portal(PortalCommand),
}

macro_rules! test_command {
    ($variant:ident: $($command:ty),*) => {
        $(impl From<$command> for TestCommand {
            fn from(command: $command) -> Self {
                TestCommand::$variant(command.into())
            }
        })*
    };
}

test_command!(Server: ServerCommand, AddServer, UpdateServer, RemoveServer, RecordSync);
test_command!(Portal: PortalCommand, AddPortal, UpdatePortal, RemovePortal);

/// What `decide` returned.
#[derive(Debug)]
pub(crate) struct Outcome {
    result: Result<Vec<Event>, DomainError>,
}

impl Outcome {
    /// The outcome of a `decide` run by an aggregate's own harness (the policy set's takes a
    /// validator).
    pub(crate) fn of(result: Result<Vec<Event>, DomainError>) -> Self {
        Outcome { result }
    }

    /// Asserts that the command was accepted with exactly these events.
    #[track_caller]
    pub(crate) fn then_expect(self, expected: impl IntoIterator<Item = Event>) {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected),
            Err(e) => panic!("expected {} event(s), got the error: {e}", expected.len()),
        }
    }

    /// Asserts that the command was accepted, and returns its events.
    #[track_caller]
    pub(crate) fn then_accept(self) -> Vec<Event> {
        match self.result {
            Ok(events) => events,
            Err(e) => panic!("expected the command to be accepted, got the error: {e}"),
        }
    }

    /// Asserts that the command was refused with exactly this error.
    #[track_caller]
    pub(crate) fn then_expect_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected the error `{expected}`, got {events:?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    /// Asserts that the command was refused for an invalid `field`, and returns the message.
    #[track_caller]
    pub(crate) fn then_expect_invalid(self, field: &str) -> String {
        match self.result {
            Ok(events) => panic!("expected `{field}` to be refused, got {events:?}"),
            Err(DomainError::InvalidField { field: actual, message }) => {
                assert_eq!(actual, field, "wrong field; message: {message}");
                message
            }
            Err(e) => panic!("expected `{field}` to be refused, got the error: {e}"),
        }
    }
}
