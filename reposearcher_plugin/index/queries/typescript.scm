; inherits: ecmascript
; Both TypeScript grammars (.ts and .tsx) name their nodes alike, so this one query serves both.

(abstract_class_declaration) @definition.class
(interface_declaration) @definition.class
(enum_declaration) @definition.class
; Overload and ambient (`declare`, .d.ts) signatures are kept as entities: in a declaration file they are
; the only trace of the API, and overloads simply share a qualname with their implementation.
(function_signature) @definition.function
(class_body [(method_signature) (abstract_method_signature)] @definition.method)
(interface_body (method_signature) @definition.method)
(class_body (public_field_definition value: [(arrow_function) (function_expression)]) @definition.method)
; `namespace A.B {}` prefixes qualnames. `module "name" {}` (an ambient module named by a string) is no
; scope: its name is a path, not an identifier that could prefix qualnames.
(internal_module name: [(identifier) (nested_identifier)]) @namespace
(module name: [(identifier) (nested_identifier)]) @namespace
