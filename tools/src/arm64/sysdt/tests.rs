use super::*;

#[test]
fn the_xsm_policy_is_a_chosen_module_after_xens_arguments() {
    let text = chosen(Role::ControlDomU, "console=dtuart", 0x5000_0000, 0x100, "x");
    let with = with_xsm_policy(&text, 0x5090_0000, 0x2b04);
    assert!(with.contains("xen,xen-bootargs = \"console=dtuart xsm=flask flask=enforcing\";"));
    let args = with.find("xen,xen-bootargs").unwrap();
    let policy = with.find("compatible = \"xen,xsm-policy\"").unwrap();
    let domu = with.find("domU1").unwrap();
    assert!(args < policy && policy < domu, "{with}");
    assert!(
        with.contains("reg = <0x0 0x50900000 0x0 0x2b04>;"),
        "{with}"
    );
}

#[test]
fn domu_node_names_the_module() {
    let text = chosen(
        Role::DomU,
        "console=dtuart",
        0x5000_0000,
        0x1234,
        "loglevel=info",
    );
    assert!(text.contains("domU1 {"));
    assert!(text.contains("module@50000000 {"));
    assert!(text.contains("reg = <0x0 0x50000000 0x0 0x1234>;"));
    assert!(text.contains("vpl011;"));
}

#[test]
fn user_examples_match_what_the_tests_boot() {
    use crate::build::IMAGE_BUDGET_BYTES;
    let examples = [
        (Role::Dom0, include_str!("../../../configs/arm64-dom0.dts")),
        (Role::DomU, include_str!("../../../configs/arm64-domU.dts")),
    ];
    for (role, text) in examples {
        // The examples reserve the image budget, so they fit every image within it.
        let nodes = chosen(role, XEN_ARGS, MODULE_BASE, IMAGE_BUDGET_BYTES, BOOTARGS);
        assert!(
            text.ends_with(&nodes),
            "{role:?} example differs from:\n{nodes}"
        );
    }
}

#[test]
fn dom0_and_domu_in_one_chosen() {
    let text = chosen_dom0_and_domu("x", 0x100, "serve=1", "frontend_test=1", 2);
    assert_eq!(text.matches("chosen {").count(), 1);
    assert!(text.contains("module@50000000 {"));
    assert!(text.contains("module@51000000 {"));
    assert!(text.contains("bootargs = \"serve=1\";"));
    assert!(text.contains("bootargs = \"frontend_test=1\";"));
    assert!(text.contains("cpus = <2>;"));
    assert!(text.ends_with(" };\n};\n"));
}

#[test]
fn control_domu_and_frontend_without_dom0() {
    let text = chosen_control_and_frontend("x", 0x100, "frontend=2", "backend=1", 2);
    assert_eq!(text.matches("chosen {").count(), 1);
    assert_eq!(text.matches("capabilities = <1>;").count(), 1);
    assert!(text.contains("domU1 {") && text.contains("domU2 {"));
    assert!(text.contains("bootargs = \"frontend=2\";"));
    assert!(text.contains("bootargs = \"backend=1\";"));
    assert!(text.contains("module@51000000 {"));
    assert!(text.contains("cpus = <2>;"));
    // The capability sits in domU1, the backend's node, before domU2 starts.
    let caps = text.find("capabilities").unwrap();
    assert!(caps < text.find("domU2").unwrap());
}

#[test]
fn dom0_module_sits_in_chosen() {
    let text = chosen(Role::Dom0, "dom0_mem=128M", 0x1_2000_0000, 0x10, "");
    assert!(!text.contains("domU1"));
    assert!(text.contains("reg = <0x1 0x20000000 0x0 0x10>;"));
}
