; Patterns valid in both the JavaScript and the TypeScript grammars (javascript.scm and typescript.scm
; inherit them). Capture names: see query_extractor.py.

; Methods are only taken from class bodies: object-literal methods are values, not definitions an issue
; would name.
(class_declaration) @definition.class
(function_declaration) @definition.function
(generator_function_declaration) @definition.function
(class_body (method_definition) @definition.method)
; `const Panel = class {}` is a class, `const f = () => {}` a function
(variable_declarator
  name: (identifier)
  value: (class)) @definition.class
(variable_declarator
  name: (identifier)
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
; After a syntax error the parser often reads the next `function f() {}` declaration as a function
; expression inside the ERROR node.
(ERROR (function_expression name: (identifier)) @definition.function)

; ES modules and CommonJS. The require pattern needs its own capture for the predicate.
(import_statement) @import
(export_statement source: (string)) @import
((call_expression function: (identifier) @_callee arguments: (arguments . (string) .)) @import
  (#eq? @_callee "require"))
(call_expression function: (import) arguments: (arguments . (string))) @import
