//! Portico's Cedar policies: the schema (`schema/portico.cedarschema`), strict validation of
//! policy texts with the line and column of each problem, entities built from Portico's facts,
//! the indexed authorizer, and what a principal sees in a portal.

pub mod authorizer;
pub mod entities;
pub mod request;
pub mod schema;
pub mod validate;
pub mod visibility;

pub use authorizer::{Decision, Narrowed, PolicyEngine, PolicyEngineError};
pub use entities::{
    Action, EntitiesBuilder, EntityError, PortalFacts, Principal, PromptFacts, RequestContext,
    ServerFacts, ToolFacts,
};
pub use request::{Request, Resource, ResourceKind, ServerInPortals};
pub use schema::{SCHEMA_TEXT, schema, schema_json};
pub use validate::{CedarValidator, validate_policy};
pub use visibility::{
    CacheKey, Hidden, NO_ALLOWED_SERVERS, OwnedCatalog, PortalCatalog, Visibility, VisibilityCache,
    VisibleServer, visibility,
};
