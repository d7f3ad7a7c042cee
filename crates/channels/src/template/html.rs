//! Post-processing of a rendered HTML body for tracking: click links and the open pixel.
//!
//! Both use a real HTML tokenizer (html5gum) and edit the original text only at the byte ranges
//! it reports, so the rest of the message is left exactly as rendered. Links in comments,
//! `<script>`, `<style>` and `<textarea>` are text to the tokenizer, never tags.

use std::convert::Infallible;
use std::ops::Range;

use html5gum::emitters::callback::{CallbackEmitter, CallbackEvent};
use html5gum::{Span, Tokenizer};

/// Walks `html`'s tokens, calling `on` with each event and its byte span in `html`.
fn tokens(html: &str, mut on: impl FnMut(CallbackEvent<'_>, Range<usize>)) {
    let mut emitter = CallbackEmitter::new(|event: CallbackEvent<'_>, span: Span<usize>| -> Option<Infallible> {
        on(event, span.start..span.end);
        None
    });
    // Without a tree builder the tokenizer cannot know that `<script>` or `<style>` content is
    // raw text; switching by tag name is what every streaming rewriter does.
    emitter.naively_switch_states(true);
    for _ in Tokenizer::new_with_emitter(html, emitter) {}
}

fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn is_web_url(url: &str) -> bool {
    let head = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

/// Passes the URL of every `<a href>` and `<area href>` with an `http:` or `https:` address
/// through `rewrite` (entities decoded, surrounding blanks trimmed) and, where it returns a new
/// URL, puts that in its place. `mailto:`, `tel:`, `#anchors`, relative links and links inside
/// comments are left alone, as is everything else in the document.
pub fn rewrite_links(html: &str, rewrite: &mut dyn FnMut(&str) -> Option<String>) -> String {
    track(html, rewrite, None)
}

/// [`rewrite_links`] and then [`add_open_pixel`], in one pass of the tokenizer instead of two
/// (the tokenizer is most of the cost of tracking a message).
pub fn rewrite_links_and_add_pixel(html: &str, rewrite: &mut dyn FnMut(&str) -> Option<String>, pixel_url: &str) -> String {
    track(html, rewrite, Some(pixel_url))
}

fn track(html: &str, rewrite: &mut dyn FnMut(&str) -> Option<String>, pixel_url: Option<&str>) -> String {
    let links = html.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"href"));
    if !links && pixel_url.is_none() {
        return html.to_owned();
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut in_link = false;
    let mut at_href = false;
    let mut seen_href = false;
    let mut body_end = None;
    tokens(html, |event, span| match event {
        CallbackEvent::EndTag { name } if name == b"body" => {
            body_end = Some(span.start);
            in_link = false;
            at_href = false;
        }
        _ if !links => {}
        CallbackEvent::OpenStartTag { name } => {
            in_link = name == b"a" || name == b"area";
            seen_href = false;
            at_href = false;
        }
        CallbackEvent::AttributeName { name } => {
            // A repeated attribute is ignored by browsers; so is it here.
            at_href = in_link && name == b"href" && !seen_href;
            seen_href |= name == b"href";
        }
        CallbackEvent::AttributeValue { value } if at_href => {
            at_href = false;
            let url = String::from_utf8_lossy(value);
            let url = url.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
            if !is_web_url(url) {
                return;
            }
            if let Some(new) = rewrite(url)
                && html.get(span.clone()).is_some()
            {
                let quoted = span.start > 0 && matches!(html.as_bytes()[span.start - 1], b'"' | b'\'');
                let escaped = escape_attribute(&new);
                edits.push((span, if quoted { escaped } else { format!("\"{escaped}\"") }));
            }
        }
        // Parse errors (a missing space between attributes, say) arrive in the middle of a tag.
        CallbackEvent::AttributeValue { .. } | CallbackEvent::Error(_) => {}
        _ => {
            in_link = false;
            at_href = false;
        }
    });
    if let Some(pixel_url) = pixel_url {
        let at = pixel_position(html, body_end);
        // Tags do not overlap, so no link's edit spans the position.
        let i = edits.partition_point(|(range, _)| range.start <= at);
        edits.insert(i, (at..at, pixel(pixel_url)));
    }
    apply(html, edits)
}

/// Where the open pixel goes: just before the last `</body>`, or at the end.
fn pixel_position(html: &str, body_end: Option<usize>) -> usize {
    body_end.filter(|&i| html.is_char_boundary(i) && html[i..].starts_with("</")).unwrap_or(html.len())
}

fn pixel(pixel_url: &str) -> String {
    format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">"#,
        escape_attribute(pixel_url)
    )
}

fn apply(html: &str, edits: Vec<(Range<usize>, String)>) -> String {
    let mut out = String::with_capacity(html.len() + edits.iter().map(|(_, s)| s.len()).sum::<usize>());
    let mut at = 0;
    for (range, text) in edits {
        if range.start < at {
            continue;
        }
        out.push_str(&html[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&html[at..]);
    out
}

/// Adds a 1×1 tracking image just before the last `</body>`, or at the end when there is none.
pub fn add_open_pixel(html: &str, pixel_url: &str) -> String {
    let mut body_end = None;
    tokens(html, |event, span| {
        if let CallbackEvent::EndTag { name } = event
            && name == b"body"
        {
            body_end = Some(span.start);
        }
    });
    let img = pixel(pixel_url);
    let at = pixel_position(html, body_end);
    let mut out = String::with_capacity(html.len() + img.len());
    out.push_str(&html[..at]);
    out.push_str(&img);
    out.push_str(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_tracking_is_both_passes() {
        let pages = [
            r#"<html><body><a href="https://a.example/x">x</a><p>text</p><a href='mailto:a@b'>m</a></body></html>"#,
            r#"<p>no body <a href=https://a.example/y>y</a></p>"#,
            r#"<body>no links</body><!-- </body> --><a href="https://late.example/">after</a>"#,
            r#"<body><a href="https://a.example/"></body></body>"#,
            "",
        ];
        for html in pages {
            let mut n = 0;
            let mut rewrite = |url: &str| {
                n += 1;
                Some(format!("https://t.example/{n}?u={url}"))
            };
            let one = rewrite_links_and_add_pixel(html, &mut rewrite, "https://t.example/o");
            let mut n = 0;
            let mut rewrite = |url: &str| {
                n += 1;
                Some(format!("https://t.example/{n}?u={url}"))
            };
            let two = add_open_pixel(&rewrite_links(html, &mut rewrite), "https://t.example/o");
            assert_eq!(one, two, "{html}");
        }
    }

    fn track(html: &str) -> (String, Vec<String>) {
        let mut seen = Vec::new();
        let out = rewrite_links(html, &mut |url| {
            seen.push(url.to_owned());
            Some(format!("https://t.example/c?u={}&n={}", url.len(), seen.len()))
        });
        (out, seen)
    }

    #[test]
    fn web_links_go_through_the_callback_in_any_spelling() {
        let html = concat!(
            r#"<p><a href="https://shop.example/a?x=1&amp;y=2">A</a> "#,
            r#"<A HREF='http://shop.example/b'>B</A> "#,
            r#"<a class=x href=https://shop.example/c>C</a> "#,
            r#"<a href="  HTTPS://shop.example/d  ">D</a></p>"#,
        );
        let (out, seen) = track(html);
        assert_eq!(
            seen,
            ["https://shop.example/a?x=1&y=2", "http://shop.example/b", "https://shop.example/c", "HTTPS://shop.example/d"]
        );
        assert_eq!(
            out,
            concat!(
                r#"<p><a href="https://t.example/c?u=30&amp;n=1">A</a> "#,
                r#"<A HREF='https://t.example/c?u=21&amp;n=2'>B</A> "#,
                r#"<a class=x href="https://t.example/c?u=22&amp;n=3">C</a> "#,
                r#"<a href="https://t.example/c?u=22&amp;n=4">D</a></p>"#,
            )
        );
    }

    #[test]
    fn other_links_and_commented_links_are_left_alone() {
        let html = concat!(
            r##"<a href="mailto:hi@shop.example">mail</a><a href="#top">top</a><a href="/account">rel</a>"##,
            r#"<a href="tel:+4930123">tel</a><!-- <a href="https://old.example/">old</a> -->"#,
            r#"<script>var s = '<a href="https://js.example/">';</script><link href="https://css.example/s.css">"#,
            r#"<a title="https://x.example/" href="">empty</a><a href="https://keep.example/">kept</a>"#,
        );
        let mut seen = Vec::new();
        let out = rewrite_links(html, &mut |url| {
            seen.push(url.to_owned());
            None
        });
        assert_eq!(seen, ["https://keep.example/"], "only the web link outside comments and scripts");
        assert_eq!(out, html, "a callback that declines changes nothing");
        let (out, seen) = track(html);
        assert_eq!(seen.len(), 1);
        assert_eq!(out, html.replace("https://keep.example/", "https://t.example/c?u=21&amp;n=1"));
    }

    #[test]
    fn spans_hold_around_entities_multibyte_text_and_sloppy_markup() {
        let html = concat!(
            "<p>Olá, José — ☕</p>",
            r#"<a href="https://a.example/?x=1&amp;" class="btn">a</a>"#,
            "<a\nhref=https://b.example/?q=caf&eacute;&amp;n=2 id=b>b</a>",
            r#"<a class="x"href="https://c.example/">c</a>"#,
            r#"<map><area shape="rect" href="https://d.example/"></map>"#,
        );
        let (out, seen) = track(html);
        assert_eq!(
            seen,
            ["https://a.example/?x=1&", "https://b.example/?q=café&n=2", "https://c.example/", "https://d.example/"]
        );
        assert_eq!(
            out,
            concat!(
                "<p>Olá, José — ☕</p>",
                r#"<a href="https://t.example/c?u=23&amp;n=1" class="btn">a</a>"#,
                "<a\nhref=\"https://t.example/c?u=30&amp;n=2\" id=b>b</a>",
                r#"<a class="x"href="https://t.example/c?u=18&amp;n=3">c</a>"#,
                r#"<map><area shape="rect" href="https://t.example/c?u=18&amp;n=4"></map>"#,
            )
        );
    }

    #[test]
    fn only_the_first_href_counts_and_urls_are_escaped_back() {
        let html = r#"<a href="https://a.example/" href="https://b.example/">x</a>"#;
        let out = rewrite_links(html, &mut |_| Some(r#"https://t.example/?q="<'>"#.to_owned()));
        assert_eq!(out, r#"<a href="https://t.example/?q=&quot;&lt;&#39;&gt;" href="https://b.example/">x</a>"#);
    }

    #[test]
    fn the_pixel_goes_before_the_closing_body_or_at_the_end() {
        let html = "<html><body><p>Hi</p><!-- </body> --></body></html>";
        let out = add_open_pixel(html, "https://t.example/o?a=1&b=2");
        assert_eq!(
            out,
            "<html><body><p>Hi</p><!-- </body> --><img src=\"https://t.example/o?a=1&amp;b=2\" width=\"1\" height=\"1\" \
             alt=\"\" style=\"display:block;border:0;width:1px;height:1px\"></body></html>"
        );
        let upper = add_open_pixel("<BODY>x</BODY >", "https://t.example/o");
        assert!(upper.starts_with("<BODY>x<img src=\"https://t.example/o\""), "{upper}");
        assert!(upper.ends_with("></BODY >"));
        let fragment = add_open_pixel("<p>Hi</p>", "https://t.example/o");
        assert!(fragment.starts_with("<p>Hi</p><img "), "{fragment}");
    }
}
