//! A tiny namespace-resolved XML tree.
//!
//! WinRM servers pick their own prefixes (`a:`/`wsa:`, `w:`/`wsman:`, even default namespaces), so
//! every lookup here goes by (namespace URI, local name), never by prefix or substring. Responses
//! are small (at most MaxEnvelopeSize, 150 KB by default), so building a tree is cheap and keeps the
//! parsing code declarative.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// An expanded name: namespace URI (empty when unbound) and local name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QName {
    /// Namespace URI, empty for unqualified names.
    pub ns: String,
    /// Local part of the name.
    pub local: String,
}

/// One element with its resolved attributes, text and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The element's expanded name.
    pub name: QName,
    /// Attributes other than namespace declarations, in document order.
    pub attrs: Vec<(QName, String)>,
    /// Concatenated character data directly inside this element (entities resolved).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

/// Why a document could not be read as XML.
#[derive(Debug, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

impl Element {
    /// True when this element has the given namespace and local name.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.name.ns == ns && self.name.local == local
    }

    /// The first direct child with this name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// All direct children with this name.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// The first element with this name anywhere below (depth first), or self.
    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        if self.is(ns, local) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(ns, local))
    }

    /// The first element with this local name in any namespace anywhere below (depth first), or
    /// self: for elements whose namespace varies, such as a CIM class named by its WMI path.
    pub fn find_local(&self, local: &str) -> Option<&Element> {
        if self.name.local == local {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_local(local))
    }

    /// The value of an unqualified attribute (WS-Man attributes such as `Name`, `CommandId`,
    /// `State` are unqualified).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n.ns.is_empty() && n.local == local)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a whole document and return its root element.
pub fn parse(doc: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(doc);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let (res, ev) = reader
            .read_resolved_event()
            .map_err(|e| XmlError(format!("after byte {pos}: {e}")))?;
        let ns = ns_string(&res)?;
        match ev {
            Event::Start(start) => {
                let el = start_element(&reader, ns, &start)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = start_element(&reader, ns, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(cur) = stack.last_mut() {
                    let s = t.xml_content().map_err(|e| XmlError(e.to_string()))?;
                    cur.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(cur) = stack.last_mut() {
                    let s = t.decode().map_err(|e| XmlError(e.to_string()))?;
                    cur.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(cur) = stack.last_mut() {
                    if let Some(ch) = r.resolve_char_ref().map_err(|e| XmlError(e.to_string()))? {
                        cur.text.push(ch);
                    } else {
                        let name = r.decode().map_err(|e| XmlError(e.to_string()))?;
                        let v = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError(format!("unknown entity &{name};")))?;
                        cur.text.push_str(v);
                    }
                }
            }
            Event::Eof => {
                return Err(XmlError(
                    "document ended before its root element closed".into(),
                ));
            }
            _ => {}
        }
    }
}

fn ns_string(res: &ResolveResult<'_>) -> Result<String, XmlError> {
    match res {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn start_element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| XmlError(e.to_string()))?;
        let key = a.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let (res, local) = reader.resolve_attribute(a.key);
        let ans = ns_string(&res)?;
        let value = a
            .unescape_value()
            .map_err(|e| XmlError(e.to_string()))?
            .into_owned();
        attrs.push((
            QName {
                ns: ans,
                local: String::from_utf8_lossy(local.as_ref()).into_owned(),
            },
            value,
        ));
    }
    Ok(Element {
        name: QName { ns, local },
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Escape text for element content or a double-quoted attribute value.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_namespace_not_prefix() {
        let a = parse(r#"<x:a xmlns:x="urn:n"><x:b k="v">t&amp;u&#65;</x:b></x:a>"#).unwrap();
        let b = parse(r#"<a xmlns="urn:n"><y:b xmlns:y="urn:n" k="v">t&amp;uA</y:b></a>"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.child("urn:n", "b").unwrap().text, "t&uA");
        assert!(a.child("", "b").is_none());
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(parse("<a><b></b>").is_err());
        assert!(parse("<p:a/>").is_err());
    }
}
