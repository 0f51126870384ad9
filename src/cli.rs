//! The command line: `mediator serve`, `mediator account ...`,
//! `mediator did ...` (DESIGN.md, "Command-line and config contract").

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, KNOWN_PERMISSIONS};
use crate::model::phone::PhoneNumber;
use crate::server;
use crate::store::StoreError;

/// Mediator: SIP B2BUA for number masking and click-to-call, with the
/// Mediator REST API.
#[derive(Debug, Parser)]
#[command(name = "mediator", version, about)]
pub struct Cli {
    /// Config file (TOML); every key can be overridden by
    /// MEDIATOR_<SECTION>_<KEY>.
    #[arg(long, global = true, default_value = "config/mediator.toml")]
    pub config: PathBuf,
    /// Log line format, `text` or `json`; overrides the config's
    /// `[log] format`.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (REST API and housekeeping) until SIGTERM or Ctrl-C.
    Serve,
    /// Manage accounts (API credentials).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage DIDs (rented numbers usable as redirect_did).
    #[command(subcommand)]
    Did(DidCommand),
    /// Check the config and print it as the server would use it.
    CheckConfig,
    /// Print the OpenAPI 3.1 document of the REST API.
    Openapi,
}

/// `mediator account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account, or update the one with this login.
    Add {
        /// HTTP Basic login.
        #[arg(long)]
        login: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// HTTP Basic password (stored as an argon2 hash).
        #[arg(long, env = "MEDIATOR_ACCOUNT_PASSWORD")]
        password: String,
        /// A permission, e.g. hide_origination_did; repeat for more.
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// Set, show or remove an account's callback URL (where call detail
    /// records are POSTed) and its signing secret. With no option it shows
    /// them. Prints `URL<TAB>SECRET`.
    Callback {
        /// Login of the account.
        #[arg(long)]
        login: String,
        /// The callback URL (http:// or https://).
        #[arg(long, conflicts_with = "clear")]
        url: Option<String>,
        /// The signing secret; without it a new account gets a random one
        /// and an account that has one keeps it.
        #[arg(long, env = "MEDIATOR_CALLBACK_SECRET", conflicts_with = "clear")]
        secret: Option<String>,
        /// Make a new random secret.
        #[arg(long, conflicts_with_all = ["secret", "clear"])]
        new_secret: bool,
        /// Remove the callback URL (records are no longer sent).
        #[arg(long)]
        clear: bool,
    },
    /// List accounts.
    List,
    /// Delete an account with its DIDs, bindings and dialouts.
    Delete {
        /// Login of the account.
        #[arg(long)]
        login: String,
    },
}

/// `mediator did ...`
#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// Give numbers to an account.
    Add {
        /// Login of the account.
        #[arg(long)]
        account: String,
        /// Numbers, E.164 with or without +.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// List DIDs, of one account or of all.
    List {
        /// Login of the account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Take numbers away (refused while a live binding or scheduled
    /// dialout uses them).
    Delete {
        /// Numbers, E.164 with or without +.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Openapi) = cli.command {
        print!("{}", crate::api::openapi::document_text());
        return Ok(());
    }
    let config = match Config::load(&cli.config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            crate::logging::init(log_format(cli.log_format.as_deref(), ""), false);
            return Err(e.into());
        }
    };
    crate::logging::init(
        log_format(cli.log_format.as_deref(), &config.log.format),
        config.log.mask_numbers,
    );
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server::serve(config).await,
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Account(cmd) => account(&config, cmd).await,
        Command::Did(cmd) => did(&config, cmd).await,
        Command::Openapi => Ok(()),
    }
}

/// The log format: the command line's, else the config's, else text.
fn log_format(flag: Option<&str>, config: &str) -> crate::logging::Format {
    flag.and_then(crate::logging::Format::parse)
        .or_else(|| crate::logging::Format::parse(config))
        .unwrap_or(crate::logging::Format::Text)
}

async fn account(config: &Config, cmd: AccountCommand) -> anyhow::Result<()> {
    let store = server::open_store(config).await?;
    match cmd {
        AccountCommand::Add {
            login,
            name,
            password,
            permissions,
        } => {
            if login.is_empty() || login.contains(':') {
                bail!("--login must be non-empty and contain no ':'");
            }
            if let Some(p) = permissions
                .iter()
                .find(|p| !KNOWN_PERMISSIONS.contains(&p.as_str()))
            {
                bail!(
                    "unknown permission `{p}`; known: {}",
                    KNOWN_PERMISSIONS.join(", ")
                );
            }
            let a = store
                .upsert_account(&name, &login, &password, &permissions)
                .await?;
            println!("{}\t{}\t{}", a.account_sid, a.login, a.name);
        }
        AccountCommand::Callback {
            login,
            url,
            secret,
            new_secret,
            clear,
        } => {
            let (old_url, old_secret) = match store.callback_of(&login).await {
                Err(StoreError::NotFound) => bail!("no account with login {login}"),
                other => other?,
            };
            let changes = url.is_some() || secret.is_some() || new_secret || clear;
            if changes {
                if let Some(u) = &url
                    && !(u.starts_with("http://") || u.starts_with("https://"))
                {
                    bail!("--url must start with http:// or https://");
                }
                let secret = match secret {
                    Some(s) => Some(s),
                    None if new_secret || old_secret.is_none() => {
                        Some(crate::callbacks::new_secret())
                    }
                    None => None,
                };
                let url = if clear { None } else { url.or(old_url) };
                store
                    .set_callback(&login, url.as_deref(), secret.as_deref())
                    .await?;
            }
            let (u, s) = store.callback_of(&login).await?;
            println!("{}\t{}", u.unwrap_or_default(), s.unwrap_or_default());
        }
        AccountCommand::List => {
            for a in store.all_accounts().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    a.account_sid,
                    a.login,
                    a.name,
                    a.permissions.join(",")
                );
            }
        }
        AccountCommand::Delete { login } => match store.delete_account(&login).await {
            Err(StoreError::NotFound) => bail!("no account with login {login}"),
            other => other?,
        },
    }
    store.close().await;
    Ok(())
}

async fn did(config: &Config, cmd: DidCommand) -> anyhow::Result<()> {
    let store = server::open_store(config).await?;
    let login_to_sid = async |login: &str| -> anyhow::Result<String> {
        let (a, _) = store
            .account_by_login(login)
            .await?
            .with_context(|| format!("no account with login {login}"))?;
        Ok(a.account_sid)
    };
    match cmd {
        DidCommand::Add { account, numbers } => {
            let sid = login_to_sid(&account).await?;
            for n in numbers {
                let number = PhoneNumber::parse(&n)?;
                let d = store.add_did(&sid, &number).await?;
                println!(
                    "{}\t{}\t{}",
                    d.did_sid, d.info.phonenumber, d.info.country_code
                );
            }
        }
        DidCommand::List { account } => {
            let accounts = match account {
                Some(login) => vec![login_to_sid(&login).await?],
                None => store
                    .all_accounts()
                    .await?
                    .into_iter()
                    .map(|a| a.account_sid)
                    .collect(),
            };
            for sid in accounts {
                for d in store.account_dids(&sid).await? {
                    println!(
                        "{}\t{}\t{}\t{}",
                        d.did_sid, d.account_sid, d.info.phonenumber, d.info.country_code
                    );
                }
            }
        }
        DidCommand::Delete { numbers } => {
            for n in numbers {
                let number = PhoneNumber::parse(&n)?;
                match store.delete_did(&number).await {
                    Err(StoreError::NotFound) => bail!("no DID {}", number.digits()),
                    other => other?,
                }
            }
        }
    }
    store.close().await;
    Ok(())
}
