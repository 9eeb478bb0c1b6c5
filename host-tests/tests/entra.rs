//! The shared Entra ID lifecycle scenario (`scim_edge_core::testing::scenario`) replayed
//! against the real Spin component in the wasmtime host.

use scim_edge_core::testing::scenario::{entra_lifecycle, Dialect};
use scim_edge_host_tests::{SpinComponent, SpinTarget};

async fn run(dialect: Dialect) -> anyhow::Result<()> {
    let mut target = SpinTarget::new(SpinComponent::shared()?, "entra-admin-token");
    match entra_lifecycle(&mut target, dialect).await {
        Ok(report) => {
            println!("{report}");
            Ok(())
        }
        Err(failure) => Err(anyhow::anyhow!("{failure}")),
    }
}

#[tokio::test]
async fn entra_lifecycle_default_dialect() -> anyhow::Result<()> {
    run(Dialect::Default).await
}

#[tokio::test]
async fn entra_lifecycle_aad_opt_scim_062020() -> anyhow::Result<()> {
    run(Dialect::AadOptScim062020).await
}
