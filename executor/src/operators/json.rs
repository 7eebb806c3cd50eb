//! JSON helpers shared by the field-based operators (map, filter, windowed-count,
//! threshold): dotted field paths and a small comparison expression language.

use serde_json::Value;

/// The value at a dotted path (`a.b.c`) of a JSON document.
pub fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Sets a dotted path, creating objects on the way.
pub fn set(doc: &mut Value, path: &str, v: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert((*part).to_owned(), v);
            return;
        }
        cur = m
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// Removes a dotted path, returning the old value.
pub fn remove(doc: &mut Value, path: &str) -> Option<Value> {
    match path.rsplit_once('.') {
        None => doc.as_object_mut()?.remove(path),
        Some((parent, last)) => {
            let mut cur = doc;
            for part in parent.split('.') {
                cur = cur.as_object_mut()?.get_mut(part)?;
            }
            cur.as_object_mut()?.remove(last)
        }
    }
}

/// Text form of a value: strings without quotes, everything else as JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A comparison operator of an expression clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `contains` (substring of the text form)
    Contains,
}

/// `path op literal`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// Field path.
    pub path: String,
    /// Comparison.
    pub op: Op,
    /// Right-hand side.
    pub literal: Value,
}

/// A conjunction (`&&`) or disjunction (`||`) of clauses; `&&` binds tighter.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// Alternatives, each a conjunction of clauses.
    pub any: Vec<Vec<Clause>>,
}

/// A malformed expression.
#[derive(Debug, thiserror::Error)]
#[error("bad expression `{0}`: expected `field OP value` joined by && or ||")]
pub struct ExprError(pub String);

impl Expr {
    /// Parses e.g. `count >= 5 && url contains "/ad/"`.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let mut any = Vec::new();
        for alt in text.split("||") {
            let mut all = Vec::new();
            for clause in alt.split("&&") {
                all.push(parse_clause(clause.trim()).ok_or_else(|| ExprError(text.to_owned()))?);
            }
            any.push(all);
        }
        Ok(Self { any })
    }

    /// Evaluates against a document; missing fields make a clause false.
    pub fn eval(&self, doc: &Value) -> bool {
        self.any
            .iter()
            .any(|all| all.iter().all(|c| eval_clause(c, doc)))
    }
}

fn parse_clause(c: &str) -> Option<Clause> {
    const OPS: &[(&str, Op)] = &[
        (" contains ", Op::Contains),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    for (tok, op) in OPS {
        if let Some((l, r)) = c.split_once(tok) {
            let path = l.trim();
            if path.is_empty() {
                return None;
            }
            let r = r.trim();
            let literal = serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.to_owned()));
            return Some(Clause {
                path: path.to_owned(),
                op: *op,
                literal,
            });
        }
    }
    None
}

fn eval_clause(c: &Clause, doc: &Value) -> bool {
    let Some(v) = get(doc, &c.path) else {
        return false;
    };
    match c.op {
        Op::Contains => as_text(v).contains(&as_text(&c.literal)),
        Op::Eq => loosely_equal(v, &c.literal),
        Op::Ne => !loosely_equal(v, &c.literal),
        op => {
            let ord = match (v.as_f64(), c.literal.as_f64()) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => Some(as_text(v).cmp(&as_text(&c.literal))),
            };
            match (op, ord) {
                (Op::Gt, Some(o)) => o.is_gt(),
                (Op::Ge, Some(o)) => o.is_ge(),
                (Op::Lt, Some(o)) => o.is_lt(),
                (Op::Le, Some(o)) => o.is_le(),
                _ => false,
            }
        }
    }
}

/// Equality that treats `5` and `5.0` as equal and compares strings to text forms.
pub fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b || as_text(a) == as_text(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let mut d = json!({"a": {"b": 1}, "l": [1, 2]});
        assert_eq!(get(&d, "a.b"), Some(&json!(1)));
        assert_eq!(get(&d, "l.1"), Some(&json!(2)));
        set(&mut d, "x.y", json!("z"));
        assert_eq!(get(&d, "x.y"), Some(&json!("z")));
        assert_eq!(remove(&mut d, "a.b"), Some(json!(1)));
        assert_eq!(get(&d, "a.b"), None);
    }

    #[test]
    fn expressions() {
        let d = json!({"count": 7, "url": "/ad/42", "ok": true});
        assert!(Expr::parse("count >= 5").expect("p").eval(&d));
        assert!(!Expr::parse("count > 7").expect("p").eval(&d));
        assert!(
            Expr::parse("count == 7 && url contains /ad/")
                .expect("p")
                .eval(&d)
        );
        assert!(Expr::parse("count < 2 || ok == true").expect("p").eval(&d));
        assert!(!Expr::parse("missing == 1").expect("p").eval(&d));
        assert!(Expr::parse("url != \"/x\"").expect("p").eval(&d));
        assert!(Expr::parse("nonsense").is_err());
    }
}
