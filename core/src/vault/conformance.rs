//! Tests every [`VaultStore`] backend must pass, run through [`Vault`] against a real store.
//!
//! `run_all` takes a factory that opens a new handle on one and the same database each time it
//! is called, so that reopening (with the right or a wrong key) can be tested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use super::{
    KeySource, MAX_SECRET_LEN, MasterKey, SecretRef, SecretString, Vault, VaultError, VaultStore,
};

const KEY: [u8; 32] = [0x5a; 32];

async fn open(store: Arc<dyn VaultStore>) -> Vault {
    Vault::open(MasterKey::from_bytes(KEY), KeySource::Config, store).await.unwrap()
}

/// Runs every conformance test on stores made by `new_store`.
pub(super) async fn run_all<F, Fut>(new_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn VaultStore>>,
{
    let vault = open(new_store().await).await;
    roundtrip(&vault).await;
    versions_increase(&vault).await;
    explicit_versions(&vault).await;
    missing_secrets(&vault).await;
    ciphertext_is_bound_to_its_name(&vault, new_store().await).await;
    deletes(&vault).await;
    names_and_sizes_are_checked(&vault).await;
    concurrent_puts_get_distinct_versions(Arc::new(open(new_store().await).await)).await;
    reopening_checks_the_key(new_store().await, new_store().await).await;
}

async fn roundtrip(vault: &Vault) {
    let secret = vault
        .put("server:roundtrip", "auth_credentials", &SecretString::from("Bearer tok-1 ✓"))
        .await
        .unwrap();
    assert_eq!(secret, SecretRef::new("server:roundtrip", "auth_credentials", 1));
    assert_eq!(vault.get(&secret).await.unwrap().expose_secret(), "Bearer tok-1 ✓");
    let empty =
        vault.put("server:roundtrip", "client_secret", &SecretString::from("")).await.unwrap();
    assert_eq!(vault.get(&empty).await.unwrap().expose_secret(), "");
    let big = "x".repeat(MAX_SECRET_LEN);
    let big_ref = vault
        .put("server:roundtrip", "oauth_token", &SecretString::from(big.as_str()))
        .await
        .unwrap();
    assert_eq!(vault.get(&big_ref).await.unwrap().expose_secret(), big);
}

async fn versions_increase(vault: &Vault) {
    let (owner, kind) = ("server:versions", "auth_credentials");
    assert_eq!(vault.latest(owner, kind).await.unwrap(), None);
    for n in 1..=3u32 {
        let secret = vault.put(owner, kind, &SecretString::from(format!("v{n}"))).await.unwrap();
        assert_eq!(secret.version, n);
        assert_eq!(vault.latest(owner, kind).await.unwrap(), Some(secret));
    }
    for n in 1..=3u32 {
        let plain = vault.get(&SecretRef::new(owner, kind, n)).await.unwrap();
        assert_eq!(plain.expose_secret(), format!("v{n}"));
    }
    // Each kind and each owner counts on its own.
    assert_eq!(vault.put(owner, "client_secret", &"c".into()).await.unwrap().version, 1);
    assert_eq!(vault.put("server:versions-2", kind, &"d".into()).await.unwrap().version, 1);
}

async fn explicit_versions(vault: &Vault) {
    let (owner, kind) = ("server:explicit", "auth_credentials");
    let at_four = vault.put_at(owner, kind, 4, &"four".into()).await.unwrap();
    assert_eq!(at_four, SecretRef::new(owner, kind, 4));
    assert_eq!(vault.get(&at_four).await.unwrap().expose_secret(), "four");
    let err = vault.put_at(owner, kind, 4, &"again".into()).await.unwrap_err();
    assert!(matches!(err, VaultError::VersionTaken { version: 4, .. }), "{err}");
    assert_eq!(vault.get(&at_four).await.unwrap().expose_secret(), "four", "not overwritten");
    assert_eq!(vault.put(owner, kind, &"next".into()).await.unwrap().version, 5);
}

async fn missing_secrets(vault: &Vault) {
    let name = SecretRef::new("server:missing", "auth_credentials", 1);
    let err = vault.get(&name).await.unwrap_err();
    assert!(matches!(err, VaultError::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "secret `auth_credentials` v1 of `server:missing` does not exist");
    assert_eq!(vault.latest("server:missing", "auth_credentials").await.unwrap(), None);
    assert!(!vault.delete(&name).await.unwrap());
    assert_eq!(vault.delete_owner("server:missing").await.unwrap(), 0);
}

async fn ciphertext_is_bound_to_its_name(vault: &Vault, store: Arc<dyn VaultStore>) {
    let a1 = vault.put("server:aad-a", "auth_credentials", &"secret-of-a-1".into()).await.unwrap();
    let a2 = vault.put("server:aad-a", "auth_credentials", &"secret-of-a-2".into()).await.unwrap();
    let row1 = store.fetch(&a1).await.unwrap().unwrap();
    let row2 = store.fetch(&a2).await.unwrap().unwrap();

    // Copied to another owner, another kind, or a later version: none decrypts.
    for target in [
        SecretRef::new("server:aad-b", "auth_credentials", 1),
        SecretRef::new("server:aad-a", "client_secret", 1),
        SecretRef::new("server:aad-a", "auth_credentials", 3),
    ] {
        let copy = super::StoredSecret { secret: target.clone(), ..row1.clone() };
        assert!(store.insert(copy).await.unwrap());
        let err = vault.get(&target).await.unwrap_err();
        assert!(
            matches!(&err, VaultError::Decrypt { owner, kind, version }
                if *owner == target.owner && *kind == target.kind && *version == target.version),
            "{err:?}"
        );
        assert!(!err.to_string().contains("secret-of-a"));
    }

    // Versions 1 and 2 swapped in place: neither decrypts.
    assert!(store.delete(&a1).await.unwrap() && store.delete(&a2).await.unwrap());
    let swapped1 = super::StoredSecret { secret: a1.clone(), ..row2.clone() };
    let swapped2 = super::StoredSecret { secret: a2.clone(), ..row1.clone() };
    assert!(store.insert(swapped1).await.unwrap() && store.insert(swapped2).await.unwrap());
    for name in [&a1, &a2] {
        assert!(matches!(vault.get(name).await, Err(VaultError::Decrypt { .. })));
    }

    // An existing version is never overwritten by an insert.
    assert!(!store.insert(row1.clone()).await.unwrap());
    assert_eq!(store.fetch(&a1).await.unwrap().unwrap().ciphertext, row2.ciphertext);
}

async fn deletes(vault: &Vault) {
    for kind in ["auth_credentials", "client_secret"] {
        for _ in 0..2 {
            vault.put("server:del", kind, &"x".into()).await.unwrap();
        }
    }
    let keep = vault.put("server:del-other", "auth_credentials", &"keep".into()).await.unwrap();

    // Rolling back the newest version makes the previous one the latest again.
    let newest = SecretRef::new("server:del", "client_secret", 2);
    assert!(vault.delete(&newest).await.unwrap());
    assert!(!vault.delete(&newest).await.unwrap());
    assert_eq!(
        vault.latest("server:del", "client_secret").await.unwrap().map(|s| s.version),
        Some(1)
    );

    assert_eq!(vault.delete_owner("server:del").await.unwrap(), 3);
    assert_eq!(vault.latest("server:del", "auth_credentials").await.unwrap(), None);
    assert_eq!(vault.get(&keep).await.unwrap().expose_secret(), "keep");
    // A server registered again under the same id starts over at version 1.
    assert_eq!(vault.put("server:del", "auth_credentials", &"y".into()).await.unwrap().version, 1);
}

async fn names_and_sizes_are_checked(vault: &Vault) {
    let err = vault.put("portico:vault", "key_check", &"x".into()).await.unwrap_err();
    assert!(matches!(err, VaultError::InvalidName { field: "owner", .. }), "{err:?}");
    assert!(vault.delete_owner("portico:vault").await.is_err());
    assert!(vault.put("", "auth_credentials", &"x".into()).await.is_err());
    assert!(vault.put("server:a", "", &"x".into()).await.is_err());
    let too_big = SecretString::from("x".repeat(MAX_SECRET_LEN + 1));
    let err = vault.put("server:big", "auth_credentials", &too_big).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("secret is {} bytes; at most {MAX_SECRET_LEN} are allowed", MAX_SECRET_LEN + 1)
    );
    assert_eq!(vault.latest("server:big", "auth_credentials").await.unwrap(), None);
}

async fn concurrent_puts_get_distinct_versions(vault: Arc<Vault>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let vault = Arc::clone(&vault);
            tokio::spawn(async move {
                let plain = SecretString::from(format!("concurrent-{i}"));
                let secret = vault.put("server:concurrent", "oauth_token", &plain).await.unwrap();
                (secret.version, i)
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        let (version, i) = task.await.unwrap();
        let plain =
            vault.get(&SecretRef::new("server:concurrent", "oauth_token", version)).await.unwrap();
        assert_eq!(plain.expose_secret(), format!("concurrent-{i}"));
        versions.insert(version);
    }
    assert_eq!(versions, (1..=8).collect());
}

async fn reopening_checks_the_key(same: Arc<dyn VaultStore>, other: Arc<dyn VaultStore>) {
    let reopened = open(same).await;
    assert_eq!(
        reopened
            .get(&SecretRef::new("server:roundtrip", "auth_credentials", 1))
            .await
            .unwrap()
            .expose_secret(),
        "Bearer tok-1 ✓"
    );
    let wrong = MasterKey::from_bytes([0xa5; 32]);
    let err = Vault::open(wrong, KeySource::Environment, other).await.unwrap_err();
    assert!(matches!(err, VaultError::WrongMasterKey { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the master key does not match the one this vault was created with \
         (source: environment variable `PORTICO_MASTER_KEY`)"
    );
}

/// Several instances opening a brand-new vault at once all succeed and agree on the key check.
pub(super) async fn racing_first_opens<F, Fut>(new_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn VaultStore>>,
{
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(new_store().await);
    }
    let opens = stores.into_iter().map(|store| {
        tokio::spawn(Vault::open(MasterKey::from_bytes(KEY), KeySource::Config, store))
    });
    let mut vaults = Vec::new();
    for open in opens.collect::<Vec<_>>() {
        vaults.push(open.await.unwrap().unwrap());
    }
    let secret = vaults[0].put("server:race", "auth_credentials", &"r".into()).await.unwrap();
    for vault in &vaults {
        assert_eq!(vault.get(&secret).await.unwrap().expose_secret(), "r");
    }
    let wrong =
        Vault::open(MasterKey::from_bytes([1; 32]), KeySource::Config, new_store().await).await;
    assert!(matches!(wrong, Err(VaultError::WrongMasterKey { .. })));
}
