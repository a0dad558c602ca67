// Embedded migrations are read at compile time: rebuild when they change, or new
// migrations would silently be left out of the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
