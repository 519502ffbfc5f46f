//! What a child offers, listed: its tools (kept by `tools::admit`), prompts,
//! resources and resource templates, each read a bounded number of pages and
//! kept within a bounded count and size, with a warning naming the server for
//! what is left out. Listed when the child starts and again when it says a
//! list changed.

use std::future::Future;

use rmcp::model::{
    PaginatedRequestParams, Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool,
};
use rmcp::{Peer, RoleClient, ServiceError};
use serde::Serialize;

use super::{search, tools};

/// Pages of one list asked of a child; a child that always has another page
/// would otherwise be asked for ever, and its items kept without bound.
pub const MAX_PAGES: usize = 16;
/// Prompts, resources or templates of one server that are exported (each).
pub const MAX_ITEMS: usize = 100;
/// The largest prompt, resource or template definition exported, as JSON.
pub const MAX_ITEM_BYTES: usize = 16 * 1024;

/// A child's lists.
#[derive(Default)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    /// Each tool's search terms for find_tools, in the order of `tools`.
    pub docs: Vec<search::Doc>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// Read `fetch(cursor)` page after page, up to [`MAX_PAGES`] or until more
/// than `keep` items came; the items and whether pages were left unread.
async fn pages<T, F, Fut>(keep: usize, mut fetch: F) -> Result<(Vec<T>, bool), ServiceError>
where
    F: FnMut(PaginatedRequestParams) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = fetch(PaginatedRequestParams::default().with_cursor(cursor)).await?;
        items.extend(page);
        cursor = next;
        if cursor.is_none() {
            return Ok((items, false));
        }
        if items.len() > keep {
            break;
        }
    }
    Ok((items, true))
}

/// `listing` when the child offers it; else nothing, and the child is not asked.
async fn when<T>(
    offered: bool,
    listing: impl Future<Output = Result<(Vec<T>, bool), ServiceError>>,
) -> Result<(Vec<T>, bool), ServiceError> {
    if offered {
        listing.await
    } else {
        Ok((Vec::new(), false))
    }
}

/// Everything `offers` says the child has, listed from `peer`; and the
/// warnings for what was left out.
pub async fn list(
    server: &str,
    peer: &Peer<RoleClient>,
    offers: &ServerCapabilities,
) -> Result<(Catalog, Vec<String>), ServiceError> {
    let tool_pages = pages(tools::MAX_PER_SERVER, |p| async move {
        peer.list_tools(Some(p))
            .await
            .map(|r| (r.tools, r.next_cursor))
    });
    let prompt_pages = when(
        offers.prompts.is_some(),
        pages(MAX_ITEMS, |p| async move {
            peer.list_prompts(Some(p))
                .await
                .map(|r| (r.prompts, r.next_cursor))
        }),
    );
    let resource_pages = when(
        offers.resources.is_some(),
        pages(MAX_ITEMS, |p| async move {
            peer.list_resources(Some(p))
                .await
                .map(|r| (r.resources, r.next_cursor))
        }),
    );
    let template_pages = when(
        offers.resources.is_some(),
        pages(MAX_ITEMS, |p| async move {
            peer.list_resource_templates(Some(p))
                .await
                .map(|r| (r.resource_templates, r.next_cursor))
        }),
    );
    let (listed_tools, prompts, resources, templates) =
        tokio::join!(tool_pages, prompt_pages, resource_pages, template_pages);
    let (listed_tools, unread) = listed_tools?;
    let (tools, mut warnings) = tools::admit(server, listed_tools);
    if unread {
        warnings.push(format!(
            "server `{server}` has more pages of tools than mcpod reads ({MAX_PAGES} pages, or past {} tools); the rest are not exported",
            tools::MAX_PER_SERVER
        ));
    }
    let docs = tools.iter().map(|t| search::Doc::new(server, t)).collect();
    let prompts = admit(server, "prompts", prompts, &mut warnings);
    let resources = admit(server, "resources", resources, &mut warnings);
    let templates = admit(server, "resource templates", templates, &mut warnings);
    Ok((
        Catalog {
            tools,
            docs,
            prompts,
            resources,
            templates,
        },
        warnings,
    ))
}

/// The first [`MAX_ITEMS`] of what was listed no larger than
/// [`MAX_ITEM_BYTES`], with a warning for what was left out. A child that
/// cannot list what it says it offers still serves its tools.
fn admit<T: Serialize>(
    server: &str,
    what: &str,
    listed: Result<(Vec<T>, bool), ServiceError>,
    warnings: &mut Vec<String>,
) -> Vec<T> {
    let (items, unread) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            warnings.push(format!(
                "server `{server}` offers {what} but listing them failed: {e}"
            ));
            return Vec::new();
        }
    };
    let listed = items.len();
    let mut oversized = 0usize;
    let kept: Vec<T> = items
        .into_iter()
        .filter(|item| {
            let small = serde_json::to_vec(item).is_ok_and(|v| v.len() <= MAX_ITEM_BYTES);
            oversized += usize::from(!small);
            small
        })
        .take(MAX_ITEMS)
        .collect();
    if oversized > 0 {
        warnings.push(format!(
            "server `{server}` lists {oversized} {what} larger than mcpod's limit of {MAX_ITEM_BYTES} bytes each; they are not exported"
        ));
    }
    if unread || listed - oversized > MAX_ITEMS {
        warnings.push(format!(
            "server `{server}` lists more {what} than mcpod exports ({MAX_ITEMS}, from at most {MAX_PAGES} pages); the rest are not exported"
        ));
    }
    kept
}

#[cfg(test)]
mod tests {
    use rmcp::model::Prompt;

    use super::{MAX_ITEM_BYTES, MAX_ITEMS, admit};

    fn prompts(n: usize) -> Vec<Prompt> {
        (0..n)
            .map(|i| Prompt::new(format!("p{i}"), None::<String>, None))
            .collect()
    }

    #[test]
    fn a_list_is_kept_within_its_count_and_size_with_a_warning_for_the_rest() {
        let mut warnings = Vec::new();
        let kept = admit("srv", "prompts", Ok((prompts(3), false)), &mut warnings);
        assert_eq!((kept.len(), warnings.len()), (3, 0), "{warnings:?}");

        let mut listed = prompts(MAX_ITEMS + 20);
        listed[0].description = Some("d".repeat(MAX_ITEM_BYTES));
        let kept = admit("srv", "prompts", Ok((listed, false)), &mut warnings);
        assert_eq!(kept.len(), MAX_ITEMS);
        assert_eq!(kept[0].name, "p1", "the oversized one is left out");
        assert!(warnings[0].contains("larger than mcpod's limit") && warnings[0].contains("`srv`"));
        assert!(warnings[1].contains("more prompts than mcpod exports"));

        let mut warnings = Vec::new();
        let kept = admit("srv", "prompts", Ok((prompts(2), true)), &mut warnings);
        assert_eq!(kept.len(), 2);
        assert!(
            warnings[0].contains("from at most 16 pages"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_list_that_fails_is_empty_with_the_reason() {
        let mut warnings = Vec::new();
        let failed = Err(rmcp::ServiceError::Timeout {
            timeout: std::time::Duration::from_secs(1),
        });
        let kept: Vec<Prompt> = admit("srv", "resources", failed, &mut warnings);
        assert!(kept.is_empty());
        assert!(warnings[0].contains("offers resources but listing them failed"));
    }
}
