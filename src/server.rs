//! Wiring: open the store, seed accounts, start the REST listener and the
//! housekeeping tasks, and stop them on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::call::SipHandle;
use crate::config::{AccountSeed, Config};
use crate::media::MediaConfig;
use crate::model::phone::{self, PhoneNumber};
use crate::routing::StoreRouter;
use crate::scheduler;
use crate::sip::SipConfig;
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
        if seed.callback_url.is_some() || seed.callback_secret.is_some() {
            let (url, secret) = store.callback_of(&seed.login).await?;
            let url = match &seed.callback_url {
                Some(u) if u.is_empty() => None,
                Some(u) => Some(u.clone()),
                None => url,
            };
            let secret = seed
                .callback_secret
                .clone()
                .or(secret)
                .unwrap_or_else(crate::callbacks::new_secret);
            store
                .set_callback(&seed.login, url.as_deref(), Some(&secret))
                .await
                .with_context(|| format!("account {}: cannot set its callback", seed.login))?;
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
    sip: SipHandle,
    sip_shutdown: CancellationToken,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    sip_ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Running {
    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.sip.active_calls()
    }

    /// Stops gracefully: new INVITEs get 503 while established calls go on
    /// until they end or `sip.drain_secs` pass; then the REST listener and
    /// the tasks stop, waiting for requests in flight.
    pub async fn shutdown(self) {
        self.sip_ready
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.sip_shutdown.cancel();
        self.sip.stopped().await;
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
    }
}

/// The SIP and media settings of call control, from the config contract.
fn call_config(config: &Config) -> anyhow::Result<(SipConfig, MediaConfig)> {
    let sip = SipConfig {
        listen: config.sip.listen.clone(),
        advertised_host: config.sip.advertised_host.clone(),
        trunk: config.sip.trunk.clone(),
        trusted: config.sip.trusted.clone(),
        ring_timeout_secs: config.sip.ring_timeout_secs,
        drain_secs: config.sip.drain_secs,
        session_expires_secs: config.sip.session_expires_secs,
        min_se_secs: config.sip.min_se_secs,
        max_redirects: config.sip.max_redirects,
        confirm_timeout_secs: config.sip.confirm_timeout_secs,
        trunk_username: config.sip.trunk_username.clone(),
        trunk_password: config.sip.trunk_password.clone(),
    };
    let media = MediaConfig {
        advertised_ip: config.media.advertised_ip.clone(),
        rtp_ports: config.media.rtp_ports.clone(),
        bind_ip: config
            .media
            .bind_ip
            .parse()
            .with_context(|| format!("media.bind_ip = {}", config.media.bind_ip))?,
        fetch: crate::media::audio::FetchRules {
            allow: config
                .media
                .audio_fetch_allow
                .iter()
                .map(|n| crate::config::parse_net(n))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("media.audio_fetch_allow: {e}"))?,
            local_dir: Some(config.media.audio_dir.trim())
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
            ..Default::default()
        },
        moh: config.media.moh.clone(),
    };
    Ok((sip, media))
}

/// Starts everything the config asks for and returns once listening.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    phone::warm_up();
    crate::callbacks::install_crypto_provider();
    let _ = crate::metrics::handle();
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
    let sip_ready = state.sip_ready.clone();
    let ops_state = state.clone();
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
    let mut tasks = vec![api_task, sweep];
    if !config.metrics.listen.is_empty() {
        let ops = tokio::net::TcpListener::bind(&config.metrics.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on metrics.listen = {}",
                    config.metrics.listen
                )
            })?;
        let mut ops_rx = tx.subscribe();
        let app = api::ops_router(ops_state);
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                while !*ops_rx.borrow() {
                    if ops_rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(ops, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        }));
    }
    let deliverer = crate::callbacks::Deliverer::new(store.clone(), config.callbacks.clone())
        .context("cannot start callback delivery")?;
    tasks.push(tokio::spawn(Arc::new(deliverer).run(tx.subscribe())));
    let (sip_config, media_config) = call_config(config)?;
    let sip_shutdown = CancellationToken::new();
    let sip = match crate::call::start(
        sip_config,
        media_config,
        Arc::new(StoreRouter::new(store.clone())),
        sip_shutdown.clone(),
    )
    .await
    {
        Ok(sip) => sip,
        Err(e) => {
            let _ = tx.send(true);
            return Err(anyhow::Error::new(e).context("cannot start SIP"));
        }
    };
    sip_ready.store(true, std::sync::atomic::Ordering::SeqCst);
    crate::metrics::set_gauge_source(sip.gauges());
    if config.dialouts.enabled {
        let dialer = sip.dialer();
        let schedule = scheduler::DialoutSchedule::from_config(&config.dialouts);
        tracing::info!(node = %schedule.node, "dialout scheduler started");
        tasks.push(tokio::spawn(scheduler::run_dialouts(
            store.clone(),
            schedule,
            move |d| {
                // The call runs in its own task and records its outcome.
                drop(dialer.place(d));
            },
            sip_shutdown.clone(),
        )));
    }
    tracing::info!(
        api = %api_addr,
        sip = %config.sip.listen.join(","),
        database = %redact(&config.database.url),
        "mediator started"
    );
    Ok(Running {
        api_addr,
        store,
        sip,
        sip_shutdown,
        shutdown: tx,
        tasks,
        sip_ready,
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
