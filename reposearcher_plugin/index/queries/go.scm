; Go: functions, methods (named `Receiver.Method` by the extractor), struct and interface types with the
; method specs of interfaces, and imports. Capture names: see query_extractor.py.
(function_declaration) @definition.function
(method_declaration) @definition.method
(method_elem) @definition.method
(type_spec type: [(struct_type) (interface_type)]) @definition.class
(import_spec) @import
