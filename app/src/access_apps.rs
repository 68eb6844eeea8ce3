//! The Access application settings of portals: who may sign in to a portal, how, for how long,
//! and how its OAuth authorization server registers clients. An application exists with its
//! portal; only its settings are written here.

use portico_core::Actor;
use portico_core::domain::access_app::{AccessAppInput, UpdateAccessApp, access_app_stream};
use portico_core::domain::ids::PortalId;

use crate::{App, AppError, decide};

impl App {
    /// Replaces the settings of portal `portal`'s Access application; what `input` omits
    /// takes its default.
    pub async fn update_access_app(
        &self,
        portal: &PortalId,
        input: AccessAppInput,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let command = UpdateAccessApp { portal_id: portal.clone(), input };
        self.execute(&access_app_stream(portal), actor, |m| {
            decide(&m.access_apps.state(portal), command.into(), m)
        })
        .await?;
        Ok(())
    }
}
