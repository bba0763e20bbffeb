//! QEMU monitor events of every domain on this host, through libvirt
//! (`virConnectDomainQemuMonitorEventRegister`): COLO_EXIT, STOP/RESUME (each COLO
//! checkpoint pauses and resumes the primary), SHUTDOWN, QUORUM_REPORT_BAD, ...
//!
//! libvirt delivers events from its own event loop, so one dedicated thread runs
//! `virEventRunDefaultImpl` on a connection of its own and forwards each event into
//! a tokio channel. A periodic timer wakes the loop to notice shutdown and a dead
//! connection (libvirtd restarted), which is then reopened and re-registered.
//! The same connection delivers libvirt's lifecycle events (a domain started,
//! stopped, crashed, ...) as [`LIFECYCLE`] events, so that a domain task learns at
//! once that its copy is gone or that a domain started, rather than at its next
//! poll. The `virt` crate has no safe wrapper for either call; the unsafe code is
//! confined to this file.

use std::ffi::{c_char, c_int, c_longlong, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::mpsc;
use virt::connect::Connect;
use virt::sys;

/// One QMP event of one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub domain: String,
    pub event: String,
    /// Event time (seconds + microseconds since the epoch, from QEMU).
    pub at: Duration,
    /// The event's `data`, as JSON.
    pub details: serde_json::Value,
}

/// Stops the watcher thread when dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

static EVENT_IMPL: Once = Once::new();

type Tx = mpsc::UnboundedSender<QmpEvent>;

/// Called by libvirt on its event thread.
unsafe extern "C" fn on_event(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: *const c_char,
    seconds: c_longlong,
    micros: c_uint,
    details: *const c_char,
    opaque: *mut c_void,
) {
    // SAFETY: libvirt passes back the `opaque` we registered (a leaked `Box<Tx>`,
    // freed by `free_tx` after deregistration) and C strings valid for the call.
    let tx = unsafe { &*(opaque as *const Tx) };
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-null, NUL-terminated, valid for the duration of the call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    // SAFETY: `dom` is valid during the callback; the name it returns is owned by it.
    let name = if dom.is_null() {
        String::new()
    } else {
        text(unsafe { sys::virDomainGetName(dom) })
    };
    let _ = tx.send(QmpEvent::decode(
        name,
        text(event),
        seconds,
        micros,
        &text(details),
    ));
}

/// The event name of libvirt's lifecycle events (not a QMP name: QEMU's are in
/// capitals with underscores too, but none is this); `details` is
/// `{"event": "started" | "stopped" | "crashed" | ..., "detail": n}`.
pub const LIFECYCLE: &str = "LIBVIRT_LIFECYCLE";

/// libvirt's `virDomainEventType`, in words.
pub fn lifecycle_name(event: i32) -> &'static str {
    match event {
        0 => "defined",
        1 => "undefined",
        2 => "started",
        3 => "suspended",
        4 => "resumed",
        5 => "stopped",
        6 => "shutdown",
        7 => "pmsuspended",
        8 => "crashed",
        _ => "unknown",
    }
}

/// Called by libvirt on its event thread for every lifecycle event.
unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: as in `on_event`: `opaque` is our leaked `Box<Tx>`, `dom` valid for
    // the call, the name it returns owned by it.
    let tx = unsafe { &*(opaque as *const Tx) };
    let name = if dom.is_null() {
        String::new()
    } else {
        let p = unsafe { sys::virDomainGetName(dom) };
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let _ = tx.send(QmpEvent {
        domain: name,
        event: LIFECYCLE.into(),
        at: Duration::ZERO,
        details: serde_json::json!({"event": lifecycle_name(event), "detail": detail}),
    });
    0
}

impl QmpEvent {
    /// The event as libvirt hands it over: QEMU's time stamp (seconds, which a
    /// broken clock can make negative, and microseconds) and `data` as JSON text.
    /// Details that are not JSON become `null` (the event itself still counts).
    pub fn decode(
        domain: String,
        event: String,
        seconds: i64,
        micros: u32,
        details: &str,
    ) -> QmpEvent {
        QmpEvent {
            domain,
            event,
            at: Duration::from_secs(seconds.max(0) as u64) + Duration::from_micros(micros.into()),
            details: serde_json::from_str(details).unwrap_or(serde_json::Value::Null),
        }
    }
}

unsafe extern "C" fn free_tx(opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Box<Tx>` leaked in `register`, freed exactly once here.
    drop(unsafe { Box::from_raw(opaque as *mut Tx) });
}

/// Register for libvirt's lifecycle events of every domain.
fn register_lifecycle(conn: &Connect, tx: &Tx) -> Result<c_int, String> {
    let opaque = Box::into_raw(Box::new(tx.clone())) as *mut c_void;
    type Lifecycle = unsafe extern "C" fn(
        sys::virConnectPtr,
        sys::virDomainPtr,
        c_int,
        c_int,
        *mut c_void,
    ) -> c_int;
    // SAFETY: libvirt calls the callback registered for
    // VIR_DOMAIN_EVENT_ID_LIFECYCLE with the lifecycle signature; the generic type
    // is how its C API takes every kind (VIR_DOMAIN_EVENT_CALLBACK). A live
    // connection; NULL domain means every domain; libvirt owns `opaque` from here
    // on and frees it with `free_tx`.
    let id = unsafe {
        let cb = std::mem::transmute::<
            Lifecycle,
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void),
        >(on_lifecycle);
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            Some(cb),
            opaque,
            Some(free_tx),
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take ownership.
        unsafe { free_tx(opaque) };
        return Err(virt::error::Error::last_error().message().to_string());
    }
    Ok(id)
}

fn register(conn: &Connect, tx: &Tx) -> Result<c_int, String> {
    let opaque = Box::into_raw(Box::new(tx.clone())) as *mut c_void;
    // SAFETY: a live connection; NULL domain and event mean "every domain, every
    // event"; libvirt owns `opaque` from here on and frees it with `free_tx`.
    let id = unsafe {
        sys::virConnectDomainQemuMonitorEventRegister(
            conn.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null(),
            Some(on_event),
            opaque,
            Some(free_tx),
            0,
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take ownership.
        unsafe { free_tx(opaque) };
        return Err(virt::error::Error::last_error().message().to_string());
    }
    Ok(id)
}

/// Start watching `uri`; events arrive on the returned receiver.
pub fn watch(uri: &str) -> (Watcher, mpsc::UnboundedReceiver<QmpEvent>) {
    EVENT_IMPL.call_once(|| {
        let _ = virt::event::event_register_default_impl();
        // Wake the loop every 500 ms so it can notice shutdown and dead connections.
        let _ = virt::event::event_add_timeout(500, |_, _| {}, std::ptr::null_mut());
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let uri = uri.to_string();
    std::thread::Builder::new()
        .name("qmp-events".into())
        .spawn(move || run(&uri, &tx, &flag))
        .expect("spawning the QMP event thread");
    (Watcher { stop }, rx)
}

fn run(uri: &str, tx: &Tx, stop: &AtomicBool) {
    // The connection, its QMP registration and its lifecycle registration.
    let mut conn: Option<(Connect, c_int, Option<c_int>)> = None;
    let mut last_check = std::time::Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::SeqCst) && !tx.is_closed() {
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = std::time::Instant::now();
            let alive = conn
                .as_ref()
                .is_some_and(|(c, _, _)| c.is_alive().unwrap_or(false));
            if !alive {
                conn = match Connect::open(Some(uri)) {
                    Ok(c) => match register(&c, tx) {
                        Ok(id) => {
                            tracing::info!(uri, "watching QEMU monitor events");
                            let lc = match register_lifecycle(&c, tx) {
                                Ok(lc) => Some(lc),
                                Err(e) => {
                                    tracing::warn!(uri, error = %e, "cannot watch libvirt's lifecycle events: domain tasks notice starts and stops by polling only");
                                    None
                                }
                            };
                            Some((c, id, lc))
                        }
                        Err(e) => {
                            tracing::warn!(uri, error = %e, "cannot watch QEMU monitor events");
                            None
                        }
                    },
                    Err(_) => None,
                };
            }
        }
        if virt::event::event_run_default_impl().is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if let Some((c, id, lc)) = conn {
        // SAFETY: `id` and `lc` were returned by registrations on this connection.
        unsafe { sys::virConnectDomainQemuMonitorEventDeregister(c.as_ptr(), id) };
        if let Some(lc) = lc {
            unsafe { sys::virConnectDomainEventDeregisterAny(c.as_ptr(), lc) };
        }
    }
}
