//! Each topology's data-plane secret (docs/delivery.md, "Authentication").
//!
//! `<prefix>/secrets/<ns>/<name>` holds 32 random bytes, created the first time a task
//! of the topology is launched and reused ever after (a restarted or new leader finds
//! it, so running tasks keep talking to new ones). It is created only while the
//! topology's spec exists and under this leader's fence, and removed with the topology
//! ([`Store::finalize_delete`]). Tasks get it as a Mesos `SECRET` volume, never in their
//! environment or spec.

use concord_schemas::dataplane::DATAPLANE_SECRET_LEN;
use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The stored value: JSON, so that the format can grow (another algorithm, rotation).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSecret {
    /// The HMAC-SHA256 key, hex.
    hmac_sha256: String,
}

fn encode(secret: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&StoredSecret {
        hmac_sha256: hex::encode(secret),
    })
    .unwrap_or_default()
}

fn decode(key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
    let stored: StoredSecret =
        serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
            key: key.to_owned(),
            source,
        })?;
    match hex::decode(stored.hmac_sha256.as_bytes()) {
        Ok(secret) if secret.len() == DATAPLANE_SECRET_LEN => Ok(secret),
        _ => Err(StoreError::Corrupt {
            key: key.to_owned(),
            source: <serde_json::Error as serde::de::Error>::custom(format!(
                "hmacSha256 is not {DATAPLANE_SECRET_LEN} bytes in hex"
            )),
        }),
    }
}

impl Store {
    /// `<prefix>/secrets/<ns>/<name>`
    pub fn dataplane_secret_key(&self, ns: &str, name: &str) -> String {
        format!("{}/secrets/{ns}/{name}", self.prefix())
    }

    /// The topology's data-plane secret, created (fenced, and only while its spec
    /// exists) if it has none yet. Concurrent callers all get the one stored.
    pub async fn ensure_dataplane_secret(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.dataplane_secret_key(ns, name);
        let mut client = self.client();
        if let Some(kv) = client.get(key.as_str(), None).await?.kvs().first() {
            return decode(&key, kv.value());
        }
        let secret: [u8; DATAPLANE_SECRET_LEN] = rand::random();
        let spec_key = self.spec_key(ns, name);
        let txn = Txn::new()
            .when(self.guard(vec![
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Compare::create_revision(spec_key.as_str(), CompareOp::Greater, 0),
            ]))
            .and_then([TxnOp::put(key.as_str(), encode(&secret), None)])
            .or_else([
                TxnOp::get(key.as_str(), None),
                TxnOp::get(spec_key.as_str(), None),
            ]);
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            tracing::info!(topology = %format!("{ns}/{name}"), "created the data-plane secret");
            return Ok(secret.to_vec());
        }
        let mut found = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        if let Some(Some(existing)) = found.next() {
            // Created by someone else meanwhile: theirs is the one.
            return decode(&key, &existing);
        }
        if let Some(None) = found.next() {
            return Err(StoreError::NotFound(format!("{ns}/{name}")));
        }
        self.check_fence(&key).await?;
        Err(StoreError::Fenced { key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_secrets_round_trip_and_bad_ones_are_corrupt() {
        let secret = [7u8; DATAPLANE_SECRET_LEN];
        assert_eq!(decode("k", &encode(&secret)).expect("decode"), secret);
        assert!(decode("k", b"{\"hmacSha256\":\"abcd\"}").is_err());
        assert!(decode("k", b"not json").is_err());
    }
}
