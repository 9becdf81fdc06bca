//! An inventory read from JSON without copying its packages: the server's check-in path. A
//! thousand packages parsed into owned strings, then dropped, were more than half of a check-in's
//! CPU; [`InventoryView`] borrows each package's strings from the request body instead
//! ([`PackageRef`]) and owns only the small rest ([`InventoryView::head`]). It accepts exactly
//! what [`Inventory`] accepts (a test holds the two to that).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::inventory::*;

/// One installed package, its strings borrowed from the document (copied only when JSON escapes
/// made them differ from the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PackageRef<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub arch: Cow<'a, str>,
    #[serde(borrow)]
    pub source_name: Cow<'a, str>,
    #[serde(borrow)]
    pub source_version: Cow<'a, str>,
    pub manager: PackageManager,
    #[serde(borrow)]
    pub status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub held: bool,
    pub install_time: Option<i64>,
}

impl<'a> PackageRef<'a> {
    /// A view of an owned package.
    pub fn of(p: &'a InstalledPackage) -> PackageRef<'a> {
        PackageRef {
            name: Cow::Borrowed(&p.name),
            version: Cow::Borrowed(&p.version),
            arch: Cow::Borrowed(&p.arch),
            source_name: Cow::Borrowed(&p.source_name),
            source_version: Cow::Borrowed(&p.source_version),
            manager: p.manager,
            status: p.status.as_deref().map(Cow::Borrowed),
            held: p.held,
            install_time: p.install_time,
        }
    }

    pub fn to_owned_package(&self) -> InstalledPackage {
        InstalledPackage {
            name: self.name.clone().into_owned(),
            version: self.version.clone().into_owned(),
            arch: self.arch.clone().into_owned(),
            source_name: self.source_name.clone().into_owned(),
            source_version: self.source_version.clone().into_owned(),
            manager: self.manager,
            status: self.status.clone().map(Cow::into_owned),
            held: self.held,
            install_time: self.install_time,
        }
    }
}

/// An inventory whose packages borrow from the JSON it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryView<'a> {
    /// Everything but the packages (its `packages` is empty).
    pub head: Inventory,
    pub packages: Vec<PackageRef<'a>>,
}

impl<'a> InventoryView<'a> {
    /// A view of an owned inventory (the head copied, the packages borrowed).
    /// On Ubuntu, the head's `ubuntu_pro` is settled from the packages when the inventory did not
    /// say ([`OsInfo::settle_ubuntu_pro`]): readers of the head alone decide as a reader of the
    /// whole inventory would.
    pub fn of(inventory: &'a Inventory) -> InventoryView<'a> {
        let mut head = inventory.without_packages();
        head.os
            .settle_ubuntu_pro(inventory.packages.iter().map(|p| p.version.as_str()));
        InventoryView {
            head,
            packages: inventory.packages.iter().map(PackageRef::of).collect(),
        }
    }

    /// The owned inventory.
    pub fn to_inventory(&self) -> Inventory {
        let mut inventory = self.head.clone();
        inventory.packages = self
            .packages
            .iter()
            .map(PackageRef::to_owned_package)
            .collect();
        inventory
    }
}

/// The wire form: [`Inventory`]'s fields, the packages borrowed.
#[derive(Deserialize)]
struct Flat<'a> {
    schema_version: u32,
    collected_at: String,
    collector: String,
    root: String,
    live: bool,
    host: HostIdentity,
    os: OsInfo,
    package_databases: Vec<PackageDatabase>,
    #[serde(borrow, deserialize_with = "packages_reserved")]
    packages: Vec<PackageRef<'a>>,
    kernel: KernelInfo,
    reboot: RebootInfo,
    stale_processes: Vec<StaleProcess>,
    platform: Option<Platform>,
}

/// Hosts hold hundreds to thousands of packages, and JSON does not say how many: the list starts
/// with room for [`PACKAGES_RESERVED`] instead of growing from nothing (each growth copied the
/// whole list so far: a check-in's largest copies after the body itself).
fn packages_reserved<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PackageRef<'a>>, D::Error> {
    struct Packages<'a>(std::marker::PhantomData<PackageRef<'a>>);
    impl<'de: 'a, 'a> serde::de::Visitor<'de> for Packages<'a> {
        type Value = Vec<PackageRef<'a>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of packages")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(
                seq.size_hint()
                    .unwrap_or(PACKAGES_RESERVED)
                    .min(PACKAGES_RESERVED),
            );
            while let Some(p) = seq.next_element()? {
                out.push(p);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Packages(std::marker::PhantomData))
}

/// The room a package list starts with (about a typical server's count).
const PACKAGES_RESERVED: usize = 1024;

impl<'de: 'a, 'a> Deserialize<'de> for InventoryView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Flat {
            schema_version,
            collected_at,
            collector,
            root,
            live,
            host,
            os,
            package_databases,
            packages,
            kernel,
            reboot,
            stale_processes,
            platform,
        } = Flat::deserialize(deserializer)?;
        let mut os = os;
        os.settle_ubuntu_pro(packages.iter().map(|p| p.version.as_ref()));
        Ok(InventoryView {
            head: Inventory {
                schema_version,
                collected_at,
                collector,
                root,
                live,
                host,
                os,
                package_databases,
                packages: Vec::new(),
                kernel,
                reboot,
                stale_processes,
                platform,
            },
            packages,
        })
    }
}
