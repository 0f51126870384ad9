//! Wiring: open the store, seed accounts, start the REST listener and the
//! housekeeping tasks, and stop them on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::config::{AccountSeed, Config};
use crate::model::phone::{self, PhoneNumber};
use crate::scheduler;
use crate::store::Store;

/// Opens the store named by the config and runs its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database).await.with_context(|| {
        format!(
            "cannot open the database at {}",
            redact(&config.database.url)
        )
    })
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Creates or updates the `[[accounts]]` of the config and gives them their
/// DIDs.
pub async fn seed_accounts(store: &Store, seeds: &[AccountSeed]) -> anyhow::Result<()> {
    for seed in seeds {
        let account = store
            .upsert_account(&seed.name, &seed.login, &seed.password, &seed.permissions)
            .await
            .with_context(|| format!("cannot seed account {}", seed.login))?;
        for did in &seed.dids {
            let number = PhoneNumber::parse(did)
                .with_context(|| format!("account {}: DID {did}", seed.login))?;
            store
                .add_did(&account.account_sid, &number)
                .await
                .with_context(|| format!("account {}: cannot add DID {did}", seed.login))?;
        }
    }
    Ok(())
}

/// A started server.
pub struct Running {
    /// Where the REST API listens.
    pub api_addr: SocketAddr,
    /// The store it uses.
    pub store: Store,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the listener and the tasks, waiting for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
    }
}

/// Starts everything the config asks for and returns once listening.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    phone::warm_up();
    let store = open_store(config).await?;
    seed_accounts(&store, &config.accounts).await?;
    let state = AppState::new(
        store.clone(),
        config.api.public_url.clone(),
        config.api.auth_cache_secs,
    );
    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("cannot listen on api.listen = {}", config.api.listen))?;
    let api_addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let mut api_rx = rx.clone();
    let app = api::router(state);
    let api_task = tokio::spawn(async move {
        let stop = async move {
            while !*api_rx.borrow() {
                if api_rx.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "REST listener failed");
        }
    });
    let sweep = tokio::spawn(scheduler::run_expiry(
        store.clone(),
        Duration::from_secs(config.bindings.expiry_sweep_secs),
        rx,
    ));
    tracing::info!(api = %api_addr, database = %redact(&config.database.url), "mediator started");
    Ok(Running {
        api_addr,
        store,
        shutdown: tx,
        tasks: vec![api_task, sweep],
    })
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(&config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://data/m.db"), "sqlite://data/m.db");
    }
}
