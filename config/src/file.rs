//! The TOML file: checked whole (every key known to some service, every value a
//! string, whole number or boolean), then read for one service.

use crate::services::{self, key_of, Service};
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use toml_edit::{Item, Key, TableLike, Value};

/// The file's values for `service`, by variable: its table's over the top level's.
pub fn read(path: &Path, service: &Service) -> Result<BTreeMap<&'static str, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse(path, &text, service)
}

pub fn parse(
    path: &Path,
    text: &str,
    service: &Service,
) -> Result<BTreeMap<&'static str, String>, Error> {
    let doc = toml_edit::Document::parse(text).map_err(|e| Error::Malformed {
        path: path.into(),
        message: e.to_string(),
    })?;
    let at = Place { path, text };
    let mut top = BTreeMap::new();
    let mut own = BTreeMap::new();
    for (key, item) in doc.as_table().iter() {
        let name = doc.as_table().key(key);
        match services::ALL.iter().find(|s| s.table == key) {
            Some(table_of) => {
                let table = item
                    .as_table_like()
                    .ok_or_else(|| at.wrong_type(key, name, item.type_name(), "a table"))?;
                let values = at.values(table, key, |k| table_of.reads_key(k))?;
                if table_of.table == service.table {
                    own = values;
                }
            }
            None => {
                if !services::ALL.iter().any(|s| s.reads_key(key)) {
                    return Err(at.unknown(key.to_owned(), name));
                }
                top.insert(key.to_owned(), at.text_of(key, name, item)?);
            }
        }
    }
    Ok(service
        .vars
        .iter()
        .filter_map(|var| {
            let key = key_of(var);
            let value = own.get(&key).or_else(|| top.get(&key))?;
            Some((*var, value.clone()))
        })
        .collect())
}

/// Where an error is: the file, and the line from a key's place in its text.
struct Place<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Place<'_> {
    /// A service table's values by key, each key one the service reads.
    fn values(
        &self,
        table: &dyn TableLike,
        table_name: &str,
        known: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut values = BTreeMap::new();
        for (key, item) in table.iter() {
            let name = table.get_key_value(key).map(|(k, _)| k);
            let full = format!("{table_name}.{key}");
            if !known(key) {
                return Err(self.unknown(full, name));
            }
            values.insert(key.to_owned(), self.text_of(&full, name, item)?);
        }
        Ok(values)
    }

    /// A value as the environment variable would hold it. Booleans are 1 and 0, which
    /// the API's switches read and clap takes for a flag.
    fn text_of(&self, key: &str, name: Option<&Key>, item: &Item) -> Result<String, Error> {
        match item.as_value() {
            Some(Value::String(s)) => Ok(s.value().clone()),
            Some(Value::Integer(i)) => Ok(i.value().to_string()),
            Some(Value::Boolean(b)) => Ok(if *b.value() { "1" } else { "0" }.into()),
            _ => Err(self.wrong_type(
                key,
                name,
                item.type_name(),
                "a string, a whole number or true/false",
            )),
        }
    }

    fn line(&self, name: Option<&Key>) -> usize {
        let start = name.and_then(Key::span).map_or(0, |s| s.start);
        self.text[..start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn unknown(&self, key: String, name: Option<&Key>) -> Error {
        Error::UnknownKey {
            path: self.path.into(),
            line: self.line(name),
            key,
        }
    }

    fn wrong_type(
        &self,
        key: &str,
        name: Option<&Key>,
        found: &'static str,
        wanted: &'static str,
    ) -> Error {
        Error::WrongType {
            path: self.path.into(),
            line: self.line(name),
            key: key.into(),
            found,
            wanted,
        }
    }
}
