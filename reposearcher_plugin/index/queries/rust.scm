; Rust: structs, enums, unions and traits; functions, which are methods directly in an `impl` or `trait`
; body; `impl` blocks and `mod` blocks as scopes; `use` and `extern crate` imports.
; Capture names: see query_extractor.py.
[(struct_item) (enum_item) (union_item) (trait_item)] @definition.class
[(function_item) (function_signature_item)] @definition.function
(impl_item) @implementation
(mod_item body: (declaration_list)) @namespace
[(use_declaration) (extern_crate_declaration)] @import
