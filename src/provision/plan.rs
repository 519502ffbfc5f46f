//! A provision request read and checked before anything is resolved,
//! fetched or built: which package (or a server.json's choice), its pins,
//! cutoff, runtime and system packages, each refused here when the request
//! or the operator's policy rules it out.

use super::as_of::AsOf;
use super::bases::{self, OperatorBases, Runtime, choice::Asked};
use super::reference::{self, Ecosystem, PackageRef, Pin};
use super::request::ProvisionRequest;
use super::server_json::{self, Chosen};
use crate::{Error, Result};

/// What a request provisions.
pub enum Planned {
    /// A package from npm or PyPI.
    Package(Plan),
    /// A server.json whose chosen package is an OCI image.
    Image { image: String, chosen: Chosen },
}

/// A package request, checked.
pub struct Plan {
    pub package: PackageRef,
    /// What the server.json chose, when the request was one.
    pub chosen: Option<Chosen>,
    pub pins: Vec<Pin>,
    pub as_of: Option<AsOf>,
    pub runtime: Runtime,
    /// The runtime the request named, as written (part of the request's key)
    /// and as read.
    pub runtime_named: String,
    pub asked: Option<Asked>,
    pub system: Vec<String>,
}

/// Read and check `request` against the operator's bases and allowed system
/// packages.
pub fn plan(
    request: &ProvisionRequest,
    operator: &OperatorBases,
    allowed_system: &[String],
) -> Result<Planned> {
    let chosen = server_json_choice(request)?;
    let package = match (&request.package, chosen) {
        (Some(text), _) => (PackageRef::parse("package", text)?, None),
        (None, Some(c)) => match &c.source {
            server_json::Source::Package(p) => (p.clone(), Some(c)),
            server_json::Source::Image(image) => {
                return Ok(Planned::Image {
                    image: image.clone(),
                    chosen: c,
                });
            }
        },
        (None, None) => return Err(Error::invalid("package", "", "no package", "give one")),
    };
    let (package, chosen) = package;
    let pins = reference::parse_pins(package.ecosystem, &request.pins)?;
    let as_of = request
        .resolve_as_of
        .as_deref()
        .map(AsOf::parse)
        .transpose()?;
    let runtime = match package.ecosystem {
        Ecosystem::Npm => Runtime::Node,
        Ecosystem::Pypi => Runtime::Python,
    };
    let asked = request
        .runtime
        .as_deref()
        .map(|text| bases::choice::parse(text, runtime))
        .transpose()?;
    if let (Some(text), Some(image)) = (&request.runtime, operator.get(&runtime)) {
        return Err(Error::invalid(
            "runtime",
            text.as_str(),
            format!(
                "the operator runs every {} package on its own base (--base {}={image})",
                runtime.as_str(),
                runtime.as_str()
            ),
            "drop `runtime`",
        ));
    }
    check_system(&request.system_packages, runtime, operator, allowed_system)?;
    Ok(Planned::Package(Plan {
        package,
        chosen,
        pins,
        as_of,
        runtime,
        runtime_named: request.runtime.clone().unwrap_or_default(),
        asked,
        system: request.system_packages.clone(),
    }))
}

/// The server.json's choice, when the request gave one, and the request's
/// shape checked: a package or a server.json, and a server.json's inputs
/// only with one.
fn server_json_choice(request: &ProvisionRequest) -> Result<Option<Chosen>> {
    if let Some(path) = &request.server_json_path {
        return Err(Error::invalid(
            "server_json_path",
            path.as_str(),
            "paths are read at the boundary, and this one was not",
            "pass the server.json object",
        ));
    }
    let server_json = request
        .server_json
        .as_ref()
        .map(|doc| serde_json::to_vec(doc).unwrap_or_default());
    match (&request.package, &server_json) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "server_json",
            "server.json",
            "both a package reference and a server.json were given",
            "give one of them",
        )),
        (None, None) => Err(Error::invalid(
            "package",
            "",
            "neither a package reference nor a server.json was given",
            "give `npm:NAME@VERSION`, `pypi:NAME==VERSION`, or a server.json",
        )),
        (None, Some(bytes)) => Ok(Some(server_json::translate(
            bytes,
            &server_json::Given {
                package: request.package_index,
                arguments: request.arguments.clone(),
                env: request.env.clone(),
            },
        )?)),
        (Some(_), None) => {
            if !request.arguments.is_empty()
                || !request.env.is_empty()
                || request.package_index.is_some()
            {
                return Err(Error::invalid(
                    "arguments",
                    "",
                    "`arguments`, `env` and `package_index` fill in a server.json's inputs, and none was given",
                    "for a package reference, override args and env at launch (`overrides`)",
                ));
            }
            Ok(None)
        }
    }
}

/// System packages are allowed by the operator and go only on a Python base
/// mcpod makes from Debian's packages.
fn check_system(
    system: &[String],
    runtime: Runtime,
    operator: &OperatorBases,
    allowed_system: &[String],
) -> Result<()> {
    if system.is_empty() {
        return Ok(());
    }
    bases::derived::check(system, allowed_system)?;
    if let Some(image) = operator.get(&runtime) {
        return Err(Error::invalid(
            "system_packages",
            system.join(" "),
            format!(
                "the operator runs every {} package on its own base (--base {}={image}), and system packages are installed only on a base mcpod makes from Debian's packages",
                runtime.as_str(),
                runtime.as_str()
            ),
            "drop `system_packages` (the operator's base may carry the programs)",
        ));
    }
    if runtime == Runtime::Node {
        return Err(Error::invalid(
            "system_packages",
            system.join(" "),
            "system packages are installed on a base made from Debian's packages, and node bases are made from node's official binaries",
            "drop `system_packages`, or ask the operator for a node base that carries the programs (--base node=IMAGE)",
        ));
    }
    Ok(())
}
