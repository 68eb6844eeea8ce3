//! A given/when/then harness for the aggregates' rules (after cqrs-es `test/framework.rs`):
//!
//! ```text
//! given([ServerAdded ...]).when(UpdateServer { .. }).then_expect([ServerUpdated ..]);
//! given_no_events().with_servers(directory).when(AddPortal { .. }).then_expect_error(err);
//! given(history).with_validator(cedar).when(CreatePolicy(..)).then_expect_invalid("policy");
//! ```
//!
//! It is generic over [`Aggregate`]: `given` folds the events with the aggregate's `apply`,
//! `when` runs its `decide` with the services the test set, and the `then_*` methods assert on
//! the outcome.

use std::collections::BTreeMap;

use super::DomainError;
use super::access_app::{
    AccessAppCommand, AccessAppDirectory, AccessAppState, StaticDirectory, UpdateAccessApp,
};
use super::account::{AccountState, ApiTokenCommand, ApiTokenState, CreateAccount};
use super::aggregate::Aggregate;
use super::grant::{AuthorizeGrant, GrantCommand, GrantState, RedeemCode, RefreshGrant};
use super::hostname::{HostnameClaim, HostnameCommand, PortalHostnames};
use super::identity_provider::{
    CreateIdentityProvider, DeleteIdentityProvider, IdentityProviderCommand, IdentityProviderId,
    IdentityProviderState, IdentityProviderUsage, UpdateIdentityProvider,
};
use super::ids::{PortalId, ServerId};
use super::logpush_job::{
    CreateLogpushJob, DeleteLogpushJob, LogpushJobChecks, LogpushJobCommand, LogpushJobIds,
    LogpushJobState, PlanLogpushBatch, RecordLogpushDelivery, ReserveLogpushJobId,
    UpdateLogpushJob,
};
use super::policy::{
    CreatePolicy, DeletePolicy, PolicyCommand, PolicyRecord, PolicyRejection, PolicySetState,
    PolicyValidator, ReplacePolicies, UpdatePolicy,
};
use super::portal::{
    AddPortal, PortalCommand, PortalState, RemovePortal, ServerCapabilities, ServerDirectory,
    UpdatePortal,
};
use super::server::{
    AddServer, RecordSync, RemoveServer, ServerCommand, ServerState, UpdateServer,
};
use super::service_token::{
    CreateServiceToken, DeleteServiceToken, RefreshServiceToken, RotateServiceToken,
    ServiceTokenCommand, ServiceTokenState, UpdateServiceToken,
};
use crate::event::Event;

/// The history of one aggregate's stream (which aggregate is inferred from the command given to
/// `when`).
pub(crate) fn given<A: Aggregate>(events: impl IntoIterator<Item = Event>) -> Given<A> {
    Given {
        events: events.into_iter().collect(),
        services: TestServices::default(),
        aggregate: std::marker::PhantomData,
    }
}

/// An aggregate with no history.
pub(crate) fn given_no_events<A: Aggregate>() -> Given<A> {
    given([])
}

/// A history, and what the aggregate's rules may look up.
pub(crate) struct Given<A> {
    events: Vec<Event>,
    services: TestServices,
    aggregate: std::marker::PhantomData<A>,
}

impl<A: Aggregate> Given<A>
where
    A::Services: FromTestServices,
{
    /// The servers that exist, for portal commands.
    pub(crate) fn with_servers(mut self, servers: BTreeMap<ServerId, ServerCapabilities>) -> Self {
        self.services.servers = servers;
        self
    }

    /// The portals that hold a hostname now, for hostname claims.
    pub(crate) fn with_hostnames(mut self, hostnames: BTreeMap<String, PortalId>) -> Self {
        self.services.hostnames = hostnames;
        self
    }

    /// Which portals' Access applications allow each identity provider, for provider commands.
    pub(crate) fn with_usage(mut self, usage: BTreeMap<IdentityProviderId, Vec<PortalId>>) -> Self {
        self.services.usage = usage;
        self
    }

    /// The portals (with their generations) and identity providers that exist, for Access
    /// application commands.
    pub(crate) fn with_directory(mut self, directory: StaticDirectory) -> Self {
        self.services.directory = directory;
        self
    }

    /// The validator of policy texts, for policy commands (by default every text is valid).
    pub(crate) fn with_validator(mut self, validator: impl PolicyValidator + 'static) -> Self {
        self.services.validator = Box::new(validator);
        self
    }

    /// Decides `command` against the folded history with the aggregate's own `decide`.
    pub(crate) fn when(self, command: impl IntoCommand<A>) -> Outcome {
        let state = A::fold(&self.events);
        Outcome { result: state.decide(command.into_command(), A::Services::pick(&self.services)) }
    }
}

/// Everything the aggregates' rules may look up, as the tests set it.
pub(crate) struct TestServices {
    servers: BTreeMap<ServerId, ServerCapabilities>,
    hostnames: BTreeMap<String, PortalId>,
    validator: Box<dyn PolicyValidator>,
    usage: BTreeMap<IdentityProviderId, Vec<PortalId>>,
    directory: StaticDirectory,
}

impl Default for TestServices {
    fn default() -> Self {
        TestServices {
            servers: BTreeMap::new(),
            hostnames: BTreeMap::new(),
            validator: Box::new(AcceptAll),
            usage: BTreeMap::new(),
            directory: StaticDirectory::default(),
        }
    }
}

/// Logpush checks for the tests: a filter or output options are refused when they hold
/// `"bad"`, and the only valid ownership challenge is `valid-challenge`.
pub(crate) struct TestLogpushChecks;

impl LogpushJobChecks for TestLogpushChecks {
    fn check_filter(&self, _dataset: &str, filter: &str) -> Result<(), String> {
        if filter.contains("bad") { Err("`where`: bad filter".into()) } else { Ok(()) }
    }

    fn check_output_options(
        &self,
        _dataset: &str,
        options: &serde_json::Value,
    ) -> Result<(), (String, String)> {
        if options.to_string().contains("bad") {
            Err(("field_names[0]".into(), "bad field".into()))
        } else {
            Ok(())
        }
    }

    fn check_ownership_challenge(&self, _: &str, challenge: &str) -> Result<(), String> {
        if challenge == "valid-challenge" { Ok(()) } else { Err("is not valid".into()) }
    }
}

impl FromTestServices for dyn LogpushJobChecks {
    fn pick(_: &TestServices) -> &Self {
        &TestLogpushChecks
    }
}

/// A policy validator that accepts every text.
struct AcceptAll;

impl PolicyValidator for AcceptAll {
    fn validate(&self, _: &PolicyRecord) -> Result<(), PolicyRejection> {
        Ok(())
    }
}

/// The part of [`TestServices`] an aggregate's `Services` is.
pub(crate) trait FromTestServices {
    fn pick(services: &TestServices) -> &Self;
}

impl FromTestServices for () {
    fn pick(_: &TestServices) -> &Self {
        &()
    }
}

impl FromTestServices for dyn ServerDirectory {
    fn pick(services: &TestServices) -> &Self {
        &services.servers
    }
}

impl FromTestServices for dyn PortalHostnames {
    fn pick(services: &TestServices) -> &Self {
        &services.hostnames
    }
}

impl PortalHostnames for BTreeMap<String, PortalId> {
    fn portal_with_hostname(&self, hostname: &str) -> Option<PortalId> {
        self.get(hostname).cloned()
    }
}

impl FromTestServices for dyn PolicyValidator {
    fn pick(services: &TestServices) -> &Self {
        services.validator.as_ref()
    }
}

impl FromTestServices for dyn IdentityProviderUsage {
    fn pick(services: &TestServices) -> &Self {
        &services.usage
    }
}

impl FromTestServices for dyn AccessAppDirectory {
    fn pick(services: &TestServices) -> &Self {
        &services.directory
    }
}

/// A command of aggregate `A` (or one of its variants' payloads).
pub(crate) trait IntoCommand<A: Aggregate> {
    fn into_command(self) -> A::Command;
}

macro_rules! commands {
    ($aggregate:ty: $($command:ty),*) => {
        $(impl IntoCommand<$aggregate> for $command {
            fn into_command(self) -> <$aggregate as Aggregate>::Command {
                self.into()
            }
        })*
    };
}

commands!(ServerState: ServerCommand, AddServer, UpdateServer, RemoveServer, RecordSync);
commands!(PortalState: PortalCommand, AddPortal, UpdatePortal, RemovePortal);
commands!(ServiceTokenState: ServiceTokenCommand, CreateServiceToken, UpdateServiceToken,
    RotateServiceToken, RefreshServiceToken, DeleteServiceToken);
commands!(PolicySetState: PolicyCommand, CreatePolicy, UpdatePolicy, DeletePolicy, ReplacePolicies);
commands!(AccountState: CreateAccount);
commands!(ApiTokenState: ApiTokenCommand);
commands!(HostnameClaim: HostnameCommand);
commands!(GrantState: GrantCommand, AuthorizeGrant, RedeemCode, RefreshGrant);
commands!(IdentityProviderState: IdentityProviderCommand, CreateIdentityProvider,
    UpdateIdentityProvider, DeleteIdentityProvider);
commands!(AccessAppState: AccessAppCommand, UpdateAccessApp);
commands!(LogpushJobState: LogpushJobCommand, CreateLogpushJob, UpdateLogpushJob,
    DeleteLogpushJob, RecordLogpushDelivery, PlanLogpushBatch);
commands!(LogpushJobIds: ReserveLogpushJobId);

/// What `decide` returned.
#[derive(Debug)]
pub(crate) struct Outcome {
    result: Result<Vec<Event>, DomainError>,
}

impl Outcome {
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
