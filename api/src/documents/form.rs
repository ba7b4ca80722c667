//! The `multipart/form-data` body of a document upload (RFC 7578): the file, hashed while it
//! is read and refused with 413 the moment it passes the configured size, and the small text
//! parts, each bounded. Nothing is stored while the form is read.

use axum::extract::Multipart;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use crate::http::ApiError;

/// Longest text part, bytes.
pub const TEXT_PART_BYTES_MAX: usize = 1_024;
/// Most parts in one form.
pub const PARTS_MAX: usize = 128;

/// A form as read: the file (if any) and the text parts in order.
#[derive(Debug, Default)]
pub struct Form {
    /// The `file` part: its bytes, SHA-256 and the part's content type.
    pub file: Option<FilePart>,
    /// Every other part: name and text.
    pub texts: Vec<(String, String)>,
}

/// The file of a form.
#[derive(Debug)]
pub struct FilePart {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of them.
    pub sha256: [u8; 32],
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
}

impl Form {
    /// The only value of part `name`; 400 if it is given twice.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self.texts.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "part {name:?} is given more than once"
            )));
        }
        Ok(first)
    }

    /// Every value of part `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.texts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Refuses a part whose name is not one of `known` (or `file`).
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .texts
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((name, _)) => Err(ApiError::BadRequest(if known.is_empty() {
                format!("unknown part {name:?}; the form takes only \"file\"")
            } else {
                format!(
                    "unknown part {name:?}; the form takes file, {}",
                    known.join(", ")
                )
            })),
            None => Ok(()),
        }
    }
}

fn form_error(error: &MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("the form is larger than this route takes: {error}"))
    } else {
        ApiError::BadRequest(format!(
            "the multipart/form-data body is malformed: {error}"
        ))
    }
}

/// Reads a form, with the file limited to `file_bytes_max`.
///
/// # Errors
/// 400 for a body that is not a well-formed form (or not one), a part twice named `file`, a
/// text part over [`TEXT_PART_BYTES_MAX`] or not UTF-8, more than [`PARTS_MAX`] parts; 413
/// for a file over `file_bytes_max`.
pub async fn read(
    form: Result<Multipart, MultipartRejection>,
    file_bytes_max: usize,
) -> Result<Form, ApiError> {
    let mut multipart = form.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be multipart/form-data with a boundary: {e}"
        ))
    })?;
    let mut out = Form::default();
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| form_error(&e))? {
        parts += 1;
        if parts > PARTS_MAX {
            return Err(ApiError::BadRequest(format!(
                "the form has more than {PARTS_MAX} parts"
            )));
        }
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            if out.file.is_some() {
                return Err(ApiError::BadRequest(
                    "part \"file\" is given more than once".to_owned(),
                ));
            }
            let content_type = field.content_type().map(str::to_owned);
            let mut bytes = Vec::new();
            let mut hasher = Sha256::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| form_error(&e))? {
                if bytes.len() + chunk.len() > file_bytes_max {
                    return Err(ApiError::TooLarge(format!(
                        "the file is larger than {file_bytes_max} bytes (document_bytes_max)"
                    )));
                }
                hasher.update(&chunk);
                bytes.extend_from_slice(&chunk);
            }
            out.file = Some(FilePart {
                bytes,
                sha256: hasher.finalize().into(),
                content_type,
            });
        } else {
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| form_error(&e))? {
                if bytes.len() + chunk.len() > TEXT_PART_BYTES_MAX {
                    return Err(ApiError::BadRequest(format!(
                        "part {name:?} is longer than {TEXT_PART_BYTES_MAX} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::BadRequest(format!("part {name:?} is not UTF-8")))?;
            out.texts.push((name, text));
        }
    }
    Ok(out)
}
