//! DataFusion sessions bound to one transaction.
//!
//! [`QueryEngine`] holds a base `SessionState` built once per node (functions, optimizer
//! rules, configuration). Each statement that needs DataFusion gets a cheap derived state
//! whose catalog resolves table names to [`KvTable`]s reading through the statement's
//! transaction, and whose runtime has its own memory pool bounded by the per-query limit
//! (exceeding it fails the query with SQLSTATE 53200 instead of exhausting the node).
//!
//! Names: one catalog `postgres`, one schema `public` (PostgreSQL's defaults), plus
//! DataFusion's `information_schema`. The internal names `__dml__<table>` resolve to the
//! same table with the hidden key column, used only by DML source queries we generate.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProviderList, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionConfig;
use txn::Txn;

use crate::catalog::Catalog;
use crate::provider::KvTable;

pub const CATALOG_NAME: &str = "postgres";
pub const SCHEMA_NAME: &str = "public";
/// Prefix of the internal table names DML source queries use.
pub const DML_PREFIX: &str = "__dml__";

/// Node-wide DataFusion configuration.
pub struct QueryEngine {
    base: SessionState,
    memory_limit_bytes: usize,
}

impl QueryEngine {
    pub fn new(memory_limit_bytes: usize) -> Self {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(2)
            .with_batch_size(4096);
        let options = config.options_mut();
        options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        options.sql_parser.enable_ident_normalization = true;
        // 1.5 is numeric in PostgreSQL, not double precision.
        options.sql_parser.parse_float_as_decimal = true;
        options.execution.time_zone = Some("+00:00".to_string());
        let base = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_analyzer_rule(Arc::new(crate::arith::CheckedArithmetic))
            .build();
        let mut base = base;
        for udf in crate::functions::all() {
            // Registering replaces nothing: these names are not DataFusion's.
            let _ = base.register_udf(udf);
        }
        QueryEngine {
            base,
            memory_limit_bytes,
        }
    }

    /// A session whose tables read through `txn` as of `catalog`.
    pub fn session(&self, catalog: Arc<Catalog>, txn: Arc<Txn>) -> SessionState {
        let base_runtime = self.base.runtime_env();
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(self.memory_limit_bytes)),
            ..RuntimeEnv::clone(base_runtime)
        });
        let list = Arc::new(MemoryCatalogProviderList::new());
        let schema = Arc::new(TxnSchema { catalog, txn });
        datafusion::catalog::CatalogProviderList::register_catalog(
            list.as_ref(),
            CATALOG_NAME.to_string(),
            Arc::new(TxnCatalog { schema }),
        );
        let mut state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_runtime_env(runtime)
            .with_catalog_list(list)
            .build();
        // `now()` and friends are folded to the statement's start time.
        state.mark_start_execution();
        state
    }
}

struct TxnCatalog {
    schema: Arc<TxnSchema>,
}

impl fmt::Debug for TxnCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TxnCatalog")
    }
}

impl CatalogProvider for TxnCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA_NAME.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == SCHEMA_NAME).then(|| self.schema.clone() as Arc<dyn SchemaProvider>)
    }
}

struct TxnSchema {
    catalog: Arc<Catalog>,
    txn: Arc<Txn>,
}

impl fmt::Debug for TxnSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TxnSchema")
    }
}

#[async_trait]
impl SchemaProvider for TxnSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (name, with_key) = match name.strip_prefix(DML_PREFIX) {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        Ok(self.catalog.tables.get(name).map(|t| {
            Arc::new(KvTable::new(t.clone(), self.txn.clone(), with_key)) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog
            .tables
            .contains_key(name.strip_prefix(DML_PREFIX).unwrap_or(name))
    }
}
