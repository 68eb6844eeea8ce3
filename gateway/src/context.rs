//! Context modes: how a session presents the portal's tools, chosen by the query string of the
//! portal URL and bounded by the portal's `code_mode` setting.
//!
//! | query | mode |
//! |---|---|
//! | (none) | [`ContextMode::Full`], or code mode where the setting is `default_on` or `enforced` |
//! | `?optimize_context=minimize_tools` | [`ContextMode::MinimizeTools`] |
//! | `?optimize_context=search_and_execute` | [`ContextMode::SearchAndExecute`] |
//! | `?codemode=search_and_execute` | [`ContextMode::CodeMode`] (refused where the setting is `off`) |
//! | `?codemode=off` | [`ContextMode::Full`] (opts out where the setting is `default_on`) |
//!
//! `enforced` applies code mode whatever the query says. The two parameters do not combine.

use portico_core::domain::portal::CodeMode;

use crate::session::truncate;

/// How a session presents the portal's tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContextMode {
    /// Every tool, fully described.
    #[default]
    Full,
    /// Every tool by name only, plus `portal_query_tools` for full definitions.
    MinimizeTools,
    /// No upstream tool; `portal_query_tools` finds them, `portal_execute` calls one.
    SearchAndExecute,
    /// No upstream tool; `portal_codemode_search` and `portal_codemode_execute` run JavaScript
    /// that finds and calls them.
    CodeMode,
}

impl ContextMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextMode::Full => "full",
            ContextMode::MinimizeTools => "minimize_tools",
            ContextMode::SearchAndExecute => "search_and_execute",
            ContextMode::CodeMode => "codemode",
        }
    }

    /// The mode of a request to a portal whose setting is `setting`, from the query string of
    /// its URL (without the `?`). The error says what is wrong with the query.
    pub fn resolve(setting: CodeMode, query: &str) -> Result<ContextMode, String> {
        let mut codemode = None;
        let mut optimize = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "codemode" => &mut codemode,
                "optimize_context" => &mut optimize,
                _ => continue,
            };
            if slot.is_some() {
                return Err(format!("`{key}` is given more than once"));
            }
            *slot = Some(value.into_owned());
        }
        let requested = match (codemode.as_deref(), optimize.as_deref()) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(
                    "`codemode` and `optimize_context` do not combine: use one of them".to_owned()
                );
            }
            (Some("search_and_execute"), None) => Some(ContextMode::CodeMode),
            (Some("off"), None) => Some(ContextMode::Full),
            (Some(other), None) => {
                return Err(format!(
                    "`codemode` is `search_and_execute` or `off`, not `{}`",
                    truncate(other)
                ));
            }
            (None, Some("minimize_tools")) => Some(ContextMode::MinimizeTools),
            (None, Some("search_and_execute")) => Some(ContextMode::SearchAndExecute),
            (None, Some(other)) => {
                return Err(format!(
                    "`optimize_context` is `minimize_tools` or `search_and_execute`, not `{}`",
                    truncate(other)
                ));
            }
        };
        match setting {
            CodeMode::Off if requested == Some(ContextMode::CodeMode) => Err(
                "code mode is turned off for this portal (its `code_mode` is `off`): connect without `?codemode=search_and_execute`".to_owned(),
            ),
            CodeMode::Off | CodeMode::OptIn => Ok(requested.unwrap_or_default()),
            CodeMode::DefaultOn => Ok(requested.unwrap_or(ContextMode::CodeMode)),
            CodeMode::Enforced => Ok(ContextMode::CodeMode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ContextMode::{self, *};
    use portico_core::domain::portal::CodeMode;

    fn resolve(setting: CodeMode, query: &str) -> Result<ContextMode, String> {
        ContextMode::resolve(setting, query)
    }

    #[test]
    fn the_query_picks_the_mode_within_the_setting() {
        let cases = [
            (CodeMode::OptIn, "", Full),
            (CodeMode::OptIn, "codemode=search_and_execute", CodeMode),
            (CodeMode::OptIn, "optimize_context=minimize_tools", MinimizeTools),
            (CodeMode::OptIn, "optimize_context=search_and_execute", SearchAndExecute),
            (CodeMode::OptIn, "codemode=off", Full),
            (CodeMode::DefaultOn, "", CodeMode),
            (CodeMode::DefaultOn, "codemode=off", Full),
            (CodeMode::DefaultOn, "optimize_context=minimize_tools", MinimizeTools),
            (CodeMode::Enforced, "", CodeMode),
            (CodeMode::Enforced, "codemode=off", CodeMode),
            (CodeMode::Enforced, "optimize_context=minimize_tools", CodeMode),
            (CodeMode::Off, "", Full),
            (CodeMode::Off, "optimize_context=search_and_execute", SearchAndExecute),
            (CodeMode::Off, "codemode=off", Full),
            (CodeMode::OptIn, "other=1&codemode=search_and_execute", CodeMode),
        ];
        for (setting, query, mode) in cases {
            assert_eq!(resolve(setting, query), Ok(mode), "{setting:?} ?{query}");
        }
    }

    #[test]
    fn bad_queries_and_code_mode_where_it_is_off_are_refused() {
        let refused = |setting, query: &str, says: &str| {
            let error = resolve(setting, query).unwrap_err();
            assert!(error.contains(says), "?{query}: {error}");
        };
        refused(CodeMode::Off, "codemode=search_and_execute", "turned off for this portal");
        refused(CodeMode::OptIn, "codemode=yes", "not `yes`");
        refused(CodeMode::OptIn, "optimize_context=all", "not `all`");
        refused(
            CodeMode::OptIn,
            "codemode=search_and_execute&optimize_context=minimize_tools",
            "do not combine",
        );
        refused(CodeMode::OptIn, "codemode=off&codemode=off", "more than once");
        refused(CodeMode::OptIn, &format!("codemode={}", "x".repeat(500)), "…");
    }
}
