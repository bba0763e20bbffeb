//! `org.freedesktop.DBus.ObjectManager` at `/org/ftvirt/Ftd1`: lists the domain
//! objects (`GetManagedObjects`) for a caller allowed to monitor.
//!
//! ftd serves its own rather than zbus's (`zbus::fdo::ObjectManager`): zbus's
//! reads every object's properties without a caller, so it could not be checked.
//! zbus still recognises this one by its interface name and announces each new
//! object under it with `InterfacesAdded` (public properties only: see
//! [`super::reads`]). Objects are never removed, so there is no
//! `InterfacesRemoved` to send.

use super::reads::{denied, ReadGuard};
use super::DomainObject;
use ftd_proxy::domain_path;
use std::collections::{BTreeSet, HashMap};
use zbus::fdo::{self, ManagedObjects};
use zbus::message::Header;
use zbus::names::InterfaceName;
use zbus::object_server::{Interface, SignalEmitter};
use zbus::zvariant::{ObjectPath, Value};
use zbus::{Connection, ObjectServer};

/// The object manager: the names of the domains with an object.
#[derive(Debug)]
pub struct ObjectManager {
    reads: ReadGuard,
    domains: BTreeSet<String>,
}

impl ObjectManager {
    pub fn new(reads: ReadGuard) -> ObjectManager {
        ObjectManager {
            reads,
            domains: BTreeSet::new(),
        }
    }

    /// A domain's object was added under it.
    pub fn insert(&mut self, domain: String) {
        self.domains.insert(domain);
    }
}

#[zbus::interface(
    name = "org.freedesktop.DBus.ObjectManager",
    introspection_docs = false
)]
impl ObjectManager {
    /// Every domain object with its properties, as `GetAll` would give them to the
    /// caller; refused (`AccessDenied`) to a caller that may not monitor.
    async fn get_managed_objects(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> fdo::Result<ManagedObjects> {
        self.reads.check(conn, &hdr).await.map_err(denied)?;
        let mut objects = ManagedObjects::new();
        for name in &self.domains {
            let path = domain_path(name);
            let Ok(iref) = server.interface::<_, DomainObject>(&path).await else {
                continue;
            };
            // The getters see this message: its verdict is already kept.
            let props = iref
                .get()
                .await
                .get_all(server, conn, Some(&hdr), iref.signal_emitter())
                .await?;
            let iface = DomainObject::name().into();
            objects.insert(path, HashMap::from([(iface, props)]));
        }
        Ok(objects)
    }

    /// An object appeared (zbus emits it; declared here for introspection).
    #[zbus(signal)]
    async fn interfaces_added(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces_and_properties: HashMap<InterfaceName<'_>, HashMap<&str, Value<'_>>>,
    ) -> zbus::Result<()>;

    /// An object went away (never sent: objects stay; declared for clients that
    /// expect the standard interface whole).
    #[zbus(signal)]
    async fn interfaces_removed(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces: Vec<InterfaceName<'_>>,
    ) -> zbus::Result<()>;
}
