//! An operator's base (`--base RUNTIME=IMAGE`): an image in local storage,
//! asked once (by image ID, in a container without network) what runtime it
//! carries.

use super::{Base, Runtime, bases_dir, read_json, write_json};
use crate::engine::{buildah, podman, runtime};
use crate::image::reference;
use crate::{Error, Result};
use serde::Deserialize;

/// The operator's image for `runtime`, asked once (by image ID) what it carries.
pub async fn base(runtime: Runtime, reference_text: &str) -> Result<Base> {
    let images = buildah::images().await?;
    let Some(found) = reference::find(&images, reference_text) else {
        return Err(Error::ImageNotFound {
            reference: reference_text.to_string(),
            place: "in local storage",
            fix: format!(
                "the operator named it as the {} base (--base {}={reference_text}): pull it with `podman pull {reference_text}`, or drop the flag to let mcpod make one from the host's {}",
                runtime.as_str(),
                runtime.as_str(),
                runtime.program()
            ),
        });
    };
    let probe_path = bases_dir().join(format!(
        "probe-{}.json",
        &found.id[..found.id.len().min(16)]
    ));
    if let Some(base) = read_json::<Base>(&probe_path).filter(|b| b.runtime == runtime) {
        return Ok(Base {
            image: reference_text.to_string(),
            ..base
        });
    }
    let refused = |reason: String| {
        Error::invalid(
            "--base",
            format!("{}={reference_text}", runtime.as_str()),
            format!("`{}` could not be run in it: {reason}", runtime.program()),
            format!("name an image that has `{}` on its PATH", runtime.program()),
        )
    };
    let said = probe(runtime, &found.id).await.map_err(refused)?;
    let base = Base {
        runtime,
        image: reference_text.to_string(),
        image_id: found.id.clone(),
        version: said.version,
        glibc: said.glibc,
        origin: format!(
            "the operator's (--base {}={reference_text})",
            runtime.as_str()
        ),
        id: format!("{}@operator", runtime.as_str()),
        headers: None,
        integrity: None,
        debian: None,
    };
    write_json(&probe_path, &base)?;
    Ok(base)
}

/// What an image's runtime says it is, asked in a container (no network,
/// no capabilities, read-only, nobody): its version and its C library's.
pub struct Said {
    pub version: String,
    pub glibc: Option<String>,
}

/// How an image is asked: no network, no capabilities, read-only, nobody.
const FLAGS: [&str; 5] = [
    "--network=none",
    "--cap-drop=all",
    "--security-opt=no-new-privileges",
    "--read-only",
    "--user=65534:65534",
];

/// The names of the files in an image's library directories (`dirs`, absolute
/// paths of mcpod's own), listed by its runtime's program in a container;
/// the error is the reason it could not.
pub async fn list_libraries(
    runtime: Runtime,
    image_id: &str,
    dirs: &[&str],
) -> std::result::Result<Vec<String>, String> {
    let dirs = serde_json::to_string(dirs).map_err(|e| e.to_string())?;
    let argv: Vec<String> = match runtime {
        Runtime::Node => vec![
            "node".into(),
            "-e".into(),
            format!(
                "const fs=require('fs');const out=[];for(const d of {dirs}){{try{{out.push(...fs.readdirSync(d))}}catch(e){{}}}}console.log(JSON.stringify(out))"
            ),
        ],
        Runtime::Python => vec![
            "python3".into(),
            "-c".into(),
            format!(
                "import json,os\nout=[]\nfor d in {dirs}:\n    try: out+=os.listdir(d)\n    except OSError: pass\nprint(json.dumps(out))"
            ),
        ],
    };
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (status, output) = podman::run_probe(&FLAGS, image_id, &argv)
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{status}: {}", output.stderr_tail.trim()));
    }
    crate::engine::process::parse_json("the base's library listing", &output.stdout)
        .map_err(|e| e.to_string())
}

/// Run `runtime`'s program in `image_id`; the error is the reason it could not.
pub async fn probe(runtime: Runtime, image_id: &str) -> std::result::Result<Said, String> {
    let argv: Vec<String> = match runtime {
        Runtime::Node => vec![
            "node".into(),
            "-e".into(),
            "console.log(JSON.stringify({version:process.version,glibc:(process.report&&process.report.getReport().header.glibcVersionRuntime)||''}))".into(),
        ],
        Runtime::Python => vec!["python3".into(), "-c".into(), runtime::PYTHON_PROBE.into()],
    };
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (status, output) = podman::run_probe(&FLAGS, image_id, &argv)
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{status}: {}", output.stderr_tail.trim()));
    }
    #[derive(Deserialize)]
    struct Raw {
        version: String,
        #[serde(default)]
        glibc: String,
    }
    let raw: Raw = crate::engine::process::parse_json("the base probe", &output.stdout)
        .map_err(|e| e.to_string())?;
    Ok(Said {
        version: raw.version,
        glibc: (!raw.glibc.is_empty()).then_some(raw.glibc),
    })
}
