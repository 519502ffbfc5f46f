//! `mcpod doctor`.

use mcpod::doctor;

use super::JsonFlag;
use super::output::print;
use super::policy::EngineArgs;

#[derive(clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    engines: EngineArgs,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn doctor(args: DoctorArgs) -> Result<(), String> {
    let engines = args.engines.engines()?;
    let mut checks = doctor::run().await;
    checks.extend(doctor::engines(&engines).await);
    let out = args.out;
    let failed = checks.iter().filter(|c| !c.ok).count();
    print(&checks, out.json, || {
        checks
            .iter()
            .map(|c| {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                let fix = c
                    .fix
                    .as_deref()
                    .map(|f| format!("\n       fix: {f}"))
                    .unwrap_or_default();
                format!("{mark} {:<16} {}{fix}\n", c.name, c.detail)
            })
            .collect()
    })?;
    if failed > 0 {
        return Err(format!("{failed} check(s) failed"));
    }
    Ok(())
}
