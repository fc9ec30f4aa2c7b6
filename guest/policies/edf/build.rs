fn main() {
    guest_build::link_policy();
}
