use proc_macro::TokenStream;
#[proc_macro_attribute]
pub fn api(_a: TokenStream, i: TokenStream) -> TokenStream {
    i
}
#[proc_macro_attribute]
pub fn grant(_a: TokenStream, i: TokenStream) -> TokenStream {
    i
}
