//! Notes are markdown. They are rendered to HTML here, and nothing a note's author writes can
//! become markup of its own: raw HTML is shown as text, images as their description, and links
//! only to web and mail addresses.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Safe HTML for a note's markdown.
pub fn render(markdown: &str) -> String {
    let parser = Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS);
    let events = parser.filter_map(|event| match event {
        // Typed HTML is text: escaped on output like any other text.
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        // An image would load from anywhere (a tracking pixel); its description stays.
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let dest_url = if safe_url(&dest_url) { dest_url } else { CowStr::Borrowed("#") };
            Some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
        }
        other => Some(other),
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Web, mail and relative addresses; no `javascript:`, `data:` or other schemes.
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let path_start = lower.find(['/', '?', '#']);
    match (scheme_end, path_start) {
        (Some(c), Some(p)) if c > p => true,
        (Some(_), _) => lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:"),
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_markdown() {
        assert_eq!(render("Offered **$7,000**."), "<p>Offered <strong>$7,000</strong>.</p>\n");
        assert!(render("- one\n- two").contains("<li>one</li>"));
        assert!(render("[site](https://example.com)").contains(r#"<a href="https://example.com">site</a>"#));
    }

    #[test]
    fn markup_in_a_note_stays_text() {
        let html = render("<script>alert(1)</script> and <img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let html = render("<div onclick=\"x()\">\nblock\n</div>");
        assert!(!html.contains("<div"), "{html}");
    }

    #[test]
    fn dangerous_links_and_images_are_defused() {
        assert!(render("[x](javascript:alert(1))").contains(r##"href="#""##));
        assert!(render("[x](JaVaScRiPt:alert(1))").contains(r##"href="#""##));
        assert!(render("[x](data:text/html,hi)").contains(r##"href="#""##));
        assert!(render("[x](/contacts?q=a:b)").contains(r#"href="/contacts?q=a:b""#));
        let html = render("![tracking pixel](https://evil.example/p.gif)");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("tracking pixel"), "{html}");
    }
}
