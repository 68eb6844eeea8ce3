//! Subscriptions: catch up from a position, then follow the log live.
/// A subscription.
#[derive(Debug)]
pub struct Subscription {}
