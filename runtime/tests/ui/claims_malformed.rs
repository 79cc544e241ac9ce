#[buswarden::api(host = "orders.example")]
pub trait Orders {
    #[function(GET, "/orders/{id}", claims = "!name == 'bob'")]
    async fn order(&self, id: String) -> Result<String, buswarden::Error>;

    #[function(POST, "/cancel", claims = "roles.admin && (level > 5")]
    async fn cancel(&self, id: String) -> Result<(), buswarden::Error>;

    #[function(POST, "/refund", claims = "iss =~ '('")]
    async fn refund(&self, id: String) -> Result<(), buswarden::Error>;
}

fn main() {
    let _ = buswarden::claims_check!("level = 5");
}
