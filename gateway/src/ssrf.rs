//! TEMPORARY stub; replaced by the transport branch.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamPolicy {
    pub allow_private: bool,
}


#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct SsrfError;

impl UpstreamPolicy {
    pub async fn check_url(&self, _url: &url::Url) -> Result<(), SsrfError> {
        Ok(())
    }
}
