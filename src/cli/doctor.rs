//! `mcpod doctor`.

use mcpod::doctor;

use super::JsonFlag;
use super::output::print;

pub async fn doctor(out: JsonFlag) -> Result<(), String> {
    let checks = doctor::run().await;
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
