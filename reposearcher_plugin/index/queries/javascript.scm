; inherits: ecmascript
; The JavaScript grammar calls a class field `field_definition` (TypeScript's is `public_field_definition`);
; a field holding a function (`onClick = () => {}`) is a method in all but name.
(class_body (field_definition value: [(arrow_function) (function_expression)]) @definition.method)
