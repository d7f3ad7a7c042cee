// Temporary placeholder until the demo generator lands (being written now).
pub struct DemoSummary {
    pub users: usize,
    pub contacts: usize,
    pub companies: usize,
    pub notes: usize,
    pub relations: usize,
    pub admin_email: String,
}

pub async fn seed(_store: &rapport_store::Store, _contacts: usize, _seed: u64, _progress: &(dyn Fn(u64, u64) + Sync)) -> anyhow::Result<DemoSummary> {
    anyhow::bail!("demo generator not written yet")
}
