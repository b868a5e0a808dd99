//! A small element tree over quick-xml, shared by both importers.
//!
//! Both catalog formats are table-like documents of a few megabytes, and both importers need to
//! look things up by id across the document (mssecure joins its tables by id; CVRF refers to
//! products by id from every vulnerability). Reading the whole document into a compact tree
//! first keeps each importer a plain walk over data, and lets every error name the file, the line
//! and the element — what an admin needs to look at a broken catalog.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::error::{ImportError, short_path};

/// The deepest element nesting a catalog may have. Both real formats nest fewer than ten levels
/// (CVRF product branches: vendor, family, product); anything far deeper is damage or an attack,
/// and refusing it early keeps every later walk over the tree cheap.
pub const MAX_DEPTH: usize = 256;

/// One XML element: local name (namespace prefix dropped), attributes, children, text.
///
/// Dropping a tree is iterative (see the `Drop` impl): a derived drop recurses once per level.
#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Local name, e.g. `Bulletin` or `Remediation` (for `vuln:Remediation`).
    pub name: String,
    /// Attributes by local name, in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The concatenated text directly inside the element, entities resolved.
    pub text: String,
    /// 1-based line of the start tag.
    pub line: usize,
}

impl Element {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An attribute's value, or an error naming the file, line and element.
    pub fn required(&self, file: &str, name: &str) -> Result<&str, ImportError> {
        self.attr(name)
            .ok_or_else(|| ImportError::MissingAttribute {
                file: file.to_string(),
                line: self.line,
                element: self.name.clone(),
                attribute: name.to_string(),
            })
    }

    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child with this name; `None` when absent or empty.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// Every descendant (depth first) with this local name.
    pub fn descendants<'a>(&'a self, name: &'a str) -> Vec<&'a Element> {
        let mut out = Vec::new();
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        while let Some(e) = stack.pop() {
            if e.name == name {
                out.push(e);
            }
            stack.extend(e.children.iter().rev());
        }
        out
    }
}

impl Drop for Element {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut e) = pending.pop() {
            pending.append(&mut e.children);
        }
    }
}

/// Counts lines up to a byte offset, remembering where it stopped so a forward walk through the
/// document stays linear.
struct LineCounter<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        if offset < self.pos {
            // Rare (errors only): count from the start.
            self.pos = 0;
            self.line = 1;
        }
        self.line += self.bytes[self.pos..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = offset;
        self.line
    }
}

/// Parses a whole document into its root element. `file` names the document in errors.
pub fn parse(file: &str, text: &str) -> Result<Element, ImportError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut lines = LineCounter::new(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start_of_event = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let at = reader.error_position() as usize;
            xml_error(file, lines.line_at(at), &stack, e.to_string())
        })?;
        match event {
            Event::Start(start) => {
                let line = lines.line_at(start_of_event);
                if stack.len() >= MAX_DEPTH {
                    return Err(xml_error(
                        file,
                        line,
                        &stack,
                        format!("elements nest deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let el = open(file, line, &stack, &start)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let line = lines.line_at(start_of_event);
                let el = open(file, line, &stack, &start)?;
                close(file, el, &mut stack, &mut root, line)?;
            }
            Event::End(_) => {
                let line = lines.line_at(start_of_event);
                let Some(el) = stack.pop() else {
                    return Err(xml_error(file, line, &stack, "unexpected end tag".into()));
                };
                close(file, el, &mut stack, &mut root, line)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.xml_content().map_err(|e| {
                        xml_error(file, lines.line_at(start_of_event), &[], e.to_string())
                    })?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.decode().map_err(|e| {
                        xml_error(file, lines.line_at(start_of_event), &[], e.to_string())
                    })?;
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let line = lines.line_at(start_of_event);
                let resolved = resolve_reference(&r)
                    .ok_or_else(|| xml_error(file, line, &stack, "unknown entity".into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        let line = lines.line_at(text.len());
        return Err(xml_error(
            file,
            line,
            &stack,
            "document ends inside an element".into(),
        ));
    }
    root.ok_or_else(|| ImportError::Xml {
        file: file.to_string(),
        line: lines.line_at(text.len()),
        element: String::new(),
        message: "no root element".into(),
    })
}

/// `&amp;` and friends, and `&#NN;` character references; anything else is an error (neither
/// catalog declares entities).
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c);
    }
    let name = r.decode().ok()?;
    quick_xml::escape::resolve_predefined_entity(&name).and_then(|s| s.chars().next())
}

fn open(
    file: &str,
    line: usize,
    stack: &[Element],
    start: &BytesStart<'_>,
) -> Result<Element, ImportError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| {
            xml_error(
                file,
                line,
                stack,
                format!("in <{}>: {e}", short_name(&name)),
            )
        })?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|e| {
                xml_error(
                    file,
                    line,
                    stack,
                    format!("in <{}> {}: {e}", short_name(&name), short_name(&key)),
                )
            })?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        line,
    })
}

fn close(
    file: &str,
    el: Element,
    stack: &mut [Element],
    root: &mut Option<Element>,
    line: usize,
) -> Result<(), ImportError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => {
            return Err(xml_error(
                file,
                line,
                &[],
                format!("a second root element <{}>", short_name(&el.name)),
            ));
        }
    }
    Ok(())
}

fn xml_error(file: &str, line: usize, stack: &[Element], message: String) -> ImportError {
    ImportError::Xml {
        file: file.to_string(),
        line,
        element: short_path(stack.iter().map(|e| e.name.as_str())),
        message: short_message(message),
    }
}

/// The longest parser message an error shows whole (quick-xml quotes the names it compares).
const MESSAGE_CHARS: usize = 300;

fn short_message(message: String) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((i, _)) => format!("{}… ({} bytes in all)", &message[..i], message.len()),
        None => message,
    }
}

/// An element name as an error shows it: a hostile document can use a name of megabytes.
fn short_name(name: &str) -> String {
    short_path(std::iter::once(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_lines_text_and_entities() {
        let doc = "<a x=\"1 &amp; 2\">\n  <b>t&lt;u&#65;</b>\n  <c/>\n</a>";
        let root = parse("t.xml", doc).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1 & 2"));
        let b = root.child("b").unwrap();
        assert_eq!(b.text, "t<uA");
        assert_eq!(b.line, 2);
        assert_eq!(root.child("c").unwrap().line, 3);
    }

    #[test]
    fn malformed_xml_names_file_line_and_element() {
        let doc = "<a>\n<b>\n<c></d>\n</b></a>";
        let err = parse("broken.xml", doc).unwrap_err().to_string();
        assert!(err.contains("broken.xml:3"), "{err}");
        assert!(err.contains("a/b/c"), "{err}");
    }

    #[test]
    fn truncated_document_is_an_error() {
        let err = parse("cut.xml", "<a><b>").unwrap_err().to_string();
        assert!(err.contains("cut.xml:1"), "{err}");
        assert!(err.contains("ends inside"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_with_a_short_message() {
        let depth = 200_000;
        let doc = format!("{}{}", "<e>".repeat(depth), "</e>".repeat(depth));
        let err = parse("deep.xml", &doc).unwrap_err().to_string();
        assert!(err.starts_with("deep.xml:1:"), "{err}");
        assert!(err.contains("deeper than 256 levels"), "{err}");
        assert!(err.len() < 400, "{} bytes: {err}", err.len());
    }

    #[test]
    fn dropping_a_deep_tree_does_not_recurse() {
        // Built by hand (the parser refuses such depth): a derived drop would overflow the stack.
        let mut root = Element::default();
        for _ in 0..200_000 {
            let mut parent = Element::default();
            parent.children.push(root);
            root = parent;
        }
        drop(root);
    }

    #[test]
    fn a_huge_element_name_is_cut_in_messages() {
        let name = "n".repeat(400_000);
        let doc = format!("<a><{name}></b></a>");
        let err = parse("big.xml", &doc).unwrap_err().to_string();
        assert!(err.contains("big.xml:1"), "{err}");
        assert!(err.len() < 1_000, "{} bytes", err.len());
    }

    #[test]
    fn namespaces_are_dropped_from_names() {
        let root = parse("n.xml", "<v:x xmlns:v=\"u\"><v:y v:k=\"1\"/></v:x>").unwrap();
        assert_eq!(root.name, "x");
        assert_eq!(root.child("y").unwrap().attr("k"), Some("1"));
    }
}
