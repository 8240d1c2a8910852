//! stub
use super::Graph;
/// stub
pub fn parse(_s: &str) -> Result<Graph, crate::error::ParseError> {
    todo!()
}
