; Java: type declarations at any nesting, their methods and constructors, and imports. Members of
; anonymous classes and enum-constant bodies are dropped by the extractor (they have no name to hang on).
; Capture names: see query_extractor.py.
[(class_declaration) (interface_declaration) (enum_declaration) (record_declaration)
 (annotation_type_declaration)] @definition.class
[(method_declaration) (constructor_declaration) (compact_constructor_declaration)
 (annotation_type_element_declaration)] @definition.method
(import_declaration) @import
