//! Keeping a service registered.

use std::time::Duration;

use rarangi_proto::{Attrs, CatalogueUri, Message, ServiceUri};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connection::{Connection, Error, Options};

/// A live registration. It lasts as long as this value: dropping it closes
/// the connection, and the service disappears from every catalogue.
pub struct Registration {
    task: JoinHandle<()>,
    at: watch::Receiver<Option<CatalogueUri>>,
}

impl Registration {
    /// The catalogue currently holding the registration (None while
    /// reconnecting).
    pub fn catalogue(&self) -> Option<CatalogueUri> {
        self.at.borrow().clone()
    }

    /// The holding catalogue as it changes (None while reconnecting), to
    /// report losing the catalogue and getting it back.
    pub fn watch_catalogue(&self) -> watch::Receiver<Option<CatalogueUri>> {
        self.at.clone()
    }

    /// Waits until the registration is held by a catalogue other than
    /// `not` (or any, when None), for at most `timeout`.
    pub async fn wait_registered(
        &mut self,
        not: Option<&CatalogueUri>,
        timeout: Duration,
    ) -> Option<CatalogueUri> {
        let ok = |v: &Option<CatalogueUri>| v.as_ref().is_some_and(|c| Some(c) != not);
        tokio::time::timeout(timeout, self.at.wait_for(ok))
            .await
            .ok()?
            .ok()?
            .clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers `service` and keeps it registered: when the connection drops
/// or the catalogue restarts, it reconnects with back-off (trying the
/// endpoints in order, so side B takes over while side A is down) and
/// registers again. The first attempt's failure is returned as an error.
pub async fn register(opts: &Options, service: &str, attrs: Attrs) -> Result<Registration, Error> {
    let service = ServiceUri::parse(service).map_err(|e| Error::Invalid(e.to_string()))?;
    let conn = connect_and_register(opts, &service, &attrs).await?;
    let (tx, rx) = watch::channel(Some(conn.catalogue.clone()));
    let opts = opts.clone();
    let task = tokio::spawn(async move {
        let mut conn = Some(conn);
        let mut backoff = crate::reconnect_backoff();
        loop {
            if let Some(mut c) = conn.take() {
                let _ = tx.send(Some(c.catalogue.clone()));
                backoff.reset();
                // Hold the connection; the catalogue sends nothing we need.
                while let Ok(Some(_)) = c.recv().await {}
                tracing::warn!(service = %service, catalogue = %c.catalogue, "lost the catalogue; re-registering");
                let _ = tx.send(None);
            }
            match connect_and_register(&opts, &service, &attrs).await {
                Ok(c) => conn = Some(c),
                Err(e @ (Error::EnvMismatch { .. } | Error::Refused { .. } | Error::Invalid(_))) => {
                    tracing::error!(service = %service, error = %e, "cannot re-register; giving up");
                    return;
                }
                Err(e) => {
                    tracing::debug!(service = %service, error = %e, "no catalogue yet");
                    tokio::time::sleep(backoff.next_delay(rand::random())).await;
                }
            }
        }
    });
    Ok(Registration { task, at: rx })
}

async fn connect_and_register(
    opts: &Options,
    service: &ServiceUri,
    attrs: &Attrs,
) -> Result<Connection, Error> {
    let mut c = Connection::connect(opts).await?;
    c.request(&Message::RegServ {
        service: service.clone(),
        attrs: attrs.clone(),
    })
    .await?;
    Ok(c)
}
