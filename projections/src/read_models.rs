//! The read models one Portico instance keeps, folded together so that a reader sees the
//! catalog and the portal views at the same position.

use portico_core::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::{PortalViews, Projection, ServerCatalog};

/// The server catalog and the portal views, at one position of the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadModels {
    pub catalog: ServerCatalog,
    pub portals: PortalViews,
}

impl Projection for ReadModels {
    const NAME: &'static str = "read_models";
    const VERSION: u32 = ServerCatalog::VERSION * 1000 + PortalViews::VERSION;

    fn apply(&mut self, event: &RecordedEvent) {
        self.catalog.apply(event);
        self.portals.apply(event);
    }
}
