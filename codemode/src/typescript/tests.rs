//! The rules of [`super`], one test each, and the declarations of code mode's snapshot example.
//!
//! Properties are listed in alphabetical order in every schema here, so the expected output is
//! the same whether or not serde_json keeps the schema's order.

use serde_json::{Value, json};

use super::*;

fn ts(schema: Value) -> String {
    schema_type(&schema)
}

fn tool<'a>(name: &'a str, description: Option<&'a str>, schema: &'a Value) -> ToolDeclaration<'a> {
    ToolDeclaration { name, description, input_schema: schema }
}

/// `levels` arrays around `leaf`: `leaf` is at depth `levels`.
fn nested_arrays(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |items, _| json!({ "type": "array", "items": items }))
}

/// Definitions `d0` to `d{levels - 1}`, each an `anyOf` naming the next one `fan_out` times,
/// the last naming a string: the expansion has `fan_out^levels` members.
fn shared_definitions(levels: usize, fan_out: usize) -> Value {
    let mut definitions = serde_json::Map::new();
    for level in 0..levels {
        let next = json!({ "$ref": format!("#/$defs/d{}", level + 1) });
        definitions.insert(format!("d{level}"), json!({ "anyOf": vec![next; fan_out] }));
    }
    definitions.insert(format!("d{levels}"), json!({ "type": "string" }));
    json!({ "$ref": "#/$defs/d0", "$defs": definitions })
}

// --- declarations -------------------------------------------------------------------------

#[test]
fn declarations_reproduce_the_code_mode_snapshot() {
    let add = json!({
        "type": "object",
        "properties": {
            "a": { "type": "number", "description": "First number" },
            "b": { "type": "number", "description": "Second number" }
        },
        "required": ["a", "b"]
    });
    let greet = json!({
        "type": "object",
        "properties": { "name": { "type": "string", "description": "Name to greet" } },
        "required": ["name"]
    });
    let tools = [
        tool("add", Some("Add two numbers"), &add),
        tool("greet", Some("Generate a greeting"), &greet),
    ];

    let expected = concat!(
        "type AddInput = {\n",
        "    /** First number */\n",
        "    a: number;\n",
        "    /** Second number */\n",
        "    b: number;\n",
        "}\n",
        "type AddOutput = unknown\n",
        "type GreetInput = {\n",
        "    /** Name to greet */\n",
        "    name: string;\n",
        "}\n",
        "type GreetOutput = unknown\n",
        "\n",
        "declare const codemode: {\n",
        "\t/**\n",
        "\t * Add two numbers\n",
        "\t * @param input.a - First number\n",
        "\t * @param input.b - Second number\n",
        "\t */\n",
        "\tadd: (input: AddInput) => Promise<AddOutput>;\n",
        "\n",
        "\t/**\n",
        "\t * Generate a greeting\n",
        "\t * @param input.name - Name to greet\n",
        "\t */\n",
        "\tgreet: (input: GreetInput) => Promise<GreetOutput>;\n",
        "}",
    );
    assert_eq!(declarations(&tools).unwrap(), expected);
    assert_eq!(
        example(&tools[0]),
        "Example: async () => { const r = await codemode.add({ a: 0, b: 0 }); return r; }"
    );
}

#[test]
fn declarations_of_no_tools_are_an_empty_codemode() {
    assert_eq!(declarations(&[]).unwrap(), "declare const codemode: {}");
}

#[test]
fn a_tool_without_description_is_documented_by_its_name_and_jsdoc_text_is_escaped() {
    let schema = json!({
        "type": "object",
        "properties": {
            "q": { "type": "string", "description": "Query\nwith */ inside" },
            "z": { "type": "string", "description": " \n " }
        }
    });
    let expected = concat!(
        "type SearchDocsInput = {\n",
        "    /** Query with *\\/ inside */\n",
        "    q?: string;\n",
        "    z?: string;\n",
        "}\n",
        "type SearchDocsOutput = unknown\n",
        "\n",
        "declare const codemode: {\n",
        "\t/**\n",
        "\t * search-docs\n",
        "\t * @param input.q - Query with *\\/ inside\n",
        "\t */\n",
        "\tsearch_docs: (input: SearchDocsInput) => Promise<SearchDocsOutput>;\n",
        "}",
    );
    for description in [None, Some(""), Some(" \r\n ")] {
        let tools = [tool("search-docs", description, &schema)];
        assert_eq!(declarations(&tools).unwrap(), expected, "{description:?}");
    }
}

#[test]
fn a_tool_description_is_trimmed_with_line_breaks_as_spaces() {
    let schema = json!({ "type": "object" });
    let tools = [tool("x", Some("  Adds\r\nnumbers\rand */ more\n"), &schema)];
    let expected = concat!(
        "type XInput = Record<string, unknown>\n",
        "type XOutput = unknown\n",
        "\n",
        "declare const codemode: {\n",
        "\t/**\n",
        "\t * Adds numbers and *\\/ more\n",
        "\t */\n",
        "\tx: (input: XInput) => Promise<XOutput>;\n",
        "}",
    );
    assert_eq!(declarations(&tools).unwrap(), expected);
}

#[test]
fn a_reserved_tool_name_declares_the_suffixed_member() {
    let schema = json!({ "type": "object" });
    let tools = [tool("delete", None, &schema)];
    let expected = concat!(
        "type Delete_Input = Record<string, unknown>\n",
        "type Delete_Output = unknown\n",
        "\n",
        "declare const codemode: {\n",
        "\t/**\n",
        "\t * delete\n",
        "\t */\n",
        "\tdelete_: (input: Delete_Input) => Promise<Delete_Output>;\n",
        "}",
    );
    assert_eq!(declarations(&tools).unwrap(), expected);
}

#[test]
fn names_that_sanitise_alike_clash() {
    let schema = json!({ "type": "object" });
    let tools = [
        tool("list-issues", None, &schema),
        tool("other", None, &schema),
        tool("list.issues", None, &schema),
    ];
    let clash = declarations(&tools).unwrap_err();
    assert_eq!(
        clash,
        NameClash {
            first: "list-issues".to_owned(),
            second: "list.issues".to_owned(),
            identifier: "list_issues".to_owned(),
        }
    );
    assert_eq!(
        clash.to_string(),
        "tools `list-issues` and `list.issues` both become `codemode.list_issues` in code mode"
    );

    let twice = [tool("same", None, &schema), tool("same", None, &schema)];
    assert_eq!(declarations(&twice).unwrap_err().identifier, "same");
}

#[test]
fn type_stems_that_coincide_get_free_suffixes() {
    let identifiers = ["getUser", "get_user", "get_user_2", "GetUser"].map(str::to_owned);
    assert_eq!(type_stems(&identifiers), ["GetUser", "GetUser_3", "GetUser_2", "GetUser_4"]);

    let schema = json!({ "type": "object" });
    let tools = [tool("getUser", None, &schema), tool("get_user", None, &schema)];
    let declared = declarations(&tools).unwrap();
    assert!(declared.starts_with(concat!(
        "type GetUserInput = Record<string, unknown>\n",
        "type GetUserOutput = unknown\n",
        "type GetUser_2Input = Record<string, unknown>\n",
        "type GetUser_2Output = unknown\n",
        "\n",
    )));
    assert!(
        declared.contains("\tget_user: (input: GetUser_2Input) => Promise<GetUser_2Output>;\n")
    );
}

#[test]
fn a_schema_over_the_budget_declares_unknown_input_and_output() {
    let schema = shared_definitions(10, 4);
    assert_eq!(ts(schema.clone()), "unknown");

    let tools = [tool("big", Some("Big"), &schema)];
    let expected = concat!(
        "type BigInput = unknown\n",
        "type BigOutput = unknown\n",
        "\n",
        "declare const codemode: {\n",
        "\t/**\n",
        "\t * Big\n",
        "\t */\n",
        "\tbig: (input: BigInput) => Promise<BigOutput>;\n",
        "}",
    );
    assert_eq!(declarations(&tools).unwrap(), expected);
}

#[test]
fn shared_definitions_within_the_budget_are_expanded() {
    assert_eq!(ts(shared_definitions(2, 2)), "string | string | string | string");
}

#[test]
fn a_large_ordinary_schema_is_within_the_budget() {
    let properties: serde_json::Map<String, Value> = (0..1000)
        .map(|i| {
            let property = json!({ "type": "string", "description": format!("Property {i}") });
            (format!("p{i:04}"), property)
        })
        .collect();
    let expected: String =
        (0..1000).map(|i| format!("    /** Property {i} */\n    p{i:04}?: string;\n")).collect();
    assert_eq!(
        ts(json!({ "type": "object", "properties": properties })),
        format!("{{\n{expected}}}")
    );
}

// --- example ------------------------------------------------------------------------------

#[test]
fn example_uses_a_placeholder_per_property_type() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": { "type": "integer" },
            "b": { "type": "number" },
            "c": { "type": "boolean" },
            "d": { "type": "string" },
            "e": {},
            "f": { "type": ["number", "null"] },
            "g-h": { "type": "number" }
        }
    });
    assert_eq!(
        example(&tool("add-things", None, &schema)),
        concat!(
            "Example: async () => { const r = await codemode.add_things(",
            "{ a: 0, b: 0, c: true, d: \"...\", e: \"...\", f: \"...\", \"g-h\": 0 }",
            "); return r; }"
        )
    );
}

#[test]
fn example_without_properties_passes_an_empty_object() {
    for schema in [json!({ "type": "object" }), json!({ "type": "object", "properties": {} })] {
        assert_eq!(
            example(&tool("class", None, &schema)),
            "Example: async () => { const r = await codemode.class_({}); return r; }"
        );
    }
}

// --- sanitize_tool_name and pascal_case ---------------------------------------------------

#[test]
fn sanitize_replaces_hyphens_dots_and_whitespace_with_underscores() {
    assert_eq!(sanitize_tool_name("list-issues.v2 now\tthen\u{a0}x"), "list_issues_v2_now_then_x");
    assert_eq!(sanitize_tool_name("-"), "_");
}

#[test]
fn sanitize_strips_characters_outside_identifiers() {
    assert_eq!(sanitize_tool_name("get@user!(id)"), "getuserid");
    assert_eq!(sanitize_tool_name("café/menu:$total"), "cafmenu$total");
}

#[test]
fn sanitize_makes_an_empty_name_an_underscore() {
    assert_eq!(sanitize_tool_name(""), "_");
    assert_eq!(sanitize_tool_name("@@!"), "_");
}

#[test]
fn sanitize_prefixes_a_leading_digit() {
    assert_eq!(sanitize_tool_name("3d-model"), "_3d_model");
    assert_eq!(sanitize_tool_name("@1"), "_1");
    assert_eq!(sanitize_tool_name("_3d"), "_3d");
}

#[test]
fn sanitize_suffixes_reserved_words() {
    for (name, safe) in [
        ("delete", "delete_"),
        ("class", "class_"),
        ("await", "await_"),
        ("yield", "yield_"),
        ("null", "null_"),
        ("abstract", "abstract_"),
        ("with", "with_"),
        ("new.", "new_"),
    ] {
        assert_eq!(sanitize_tool_name(name), safe, "{name}");
    }
    for name in RESERVED_WORDS {
        assert_eq!(sanitize_tool_name(name), format!("{name}_"));
    }
}

#[test]
fn sanitize_leaves_names_that_are_not_reserved() {
    for name in ["deletes", "Class", "async", "of", "undefined", "$"] {
        assert_eq!(sanitize_tool_name(name), name);
    }
}

#[test]
fn reserved_words_are_sorted_for_bisection() {
    assert!(RESERVED_WORDS.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn pascal_case_upper_cases_each_letter_after_an_underscore_and_the_first() {
    for (safe, stem) in [
        ("list_issues", "ListIssues"),
        ("add", "Add"),
        ("get_URL", "GetURL"),
        ("delete_", "Delete_"),
        ("_3d_model", "_3dModel"),
        ("a__b", "A_B"),
        ("_private", "Private"),
        ("$ref_x", "$refX"),
        ("_", "_"),
    ] {
        assert_eq!(pascal_case(safe), stem, "{safe}");
    }
}

// --- conv: one test per rule --------------------------------------------------------------

#[test]
fn boolean_schemas_are_unknown_and_never() {
    assert_eq!(ts(json!(true)), "unknown");
    assert_eq!(ts(json!(false)), "never");
}

#[test]
fn primitive_types_map_to_typescript_primitives() {
    assert_eq!(ts(json!({ "type": "string" })), "string");
    assert_eq!(ts(json!({ "type": "number" })), "number");
    assert_eq!(ts(json!({ "type": "integer" })), "number");
    assert_eq!(ts(json!({ "type": "boolean" })), "boolean");
    assert_eq!(ts(json!({ "type": "null" })), "null");
}

#[test]
fn any_of_and_one_of_are_unions() {
    let members = json!([{ "type": "string" }, { "type": "number" }]);
    assert_eq!(ts(json!({ "anyOf": members })), "string | number");
    assert_eq!(ts(json!({ "oneOf": members })), "string | number");
    assert_eq!(ts(json!({ "anyOf": [], "type": "string" })), "never");
    // `anyOf` comes before `type`.
    assert_eq!(ts(json!({ "type": "string", "anyOf": [{ "const": 1 }] })), "1");
}

#[test]
fn all_of_is_an_intersection_with_unions_parenthesised() {
    let schema = json!({
        "allOf": [
            { "type": "object", "properties": { "a": { "type": "string" } } },
            { "type": "object", "properties": { "b": { "type": "number" } } }
        ]
    });
    assert_eq!(ts(schema), "{\n    a?: string;\n} & {\n    b?: number;\n}");
    let schema = json!({
        "allOf": [{ "anyOf": [{ "type": "string" }, { "type": "number" }] }, { "const": "x" }]
    });
    assert_eq!(ts(schema), "(string | number) & \"x\"");
    assert_eq!(ts(json!({ "allOf": [] })), "unknown");
}

#[test]
fn enum_is_a_union_of_literals() {
    let schema = json!({ "enum": ["a", "say \"hi\"\n", null, 1, 2.5, true, { "k": [1] }] });
    assert_eq!(ts(schema), r#""a" | "say \"hi\"\n" | null | 1 | 2.5 | true | {"k":[1]}"#);
    assert_eq!(ts(json!({ "enum": ["only"] })), "\"only\"");
}

#[test]
fn an_empty_enum_is_never() {
    assert_eq!(ts(json!({ "enum": [], "type": "string" })), "never");
}

#[test]
fn const_is_one_literal() {
    assert_eq!(ts(json!({ "const": "x\\y" })), r#""x\\y""#);
    assert_eq!(ts(json!({ "const": null })), "null");
    assert_eq!(ts(json!({ "const": false })), "false");
    assert_eq!(ts(json!({ "const": 3 })), "3");
    assert_eq!(ts(json!({ "const": { "a": [1, "b"] } })), r#"{"a":[1,"b"]}"#);
}

#[test]
fn tuples_come_from_prefix_items_or_array_items() {
    let schema =
        json!({ "type": "array", "prefixItems": [{ "type": "string" }, { "type": "number" }] });
    assert_eq!(ts(schema), "[string, number]");
    let schema = json!({ "type": "array", "items": [{ "type": "boolean" }, { "const": "x" }] });
    assert_eq!(ts(schema), "[boolean, \"x\"]");
    let schema = json!({
        "type": "array",
        "prefixItems": [{ "type": "string" }],
        "items": { "type": "number" }
    });
    assert_eq!(ts(schema), "[string]");
    assert_eq!(ts(json!({ "type": "array", "prefixItems": [] })), "[]");
}

#[test]
fn arrays_are_element_arrays() {
    assert_eq!(ts(json!({ "type": "array", "items": { "type": "string" } })), "string[]");
    assert_eq!(ts(json!({ "type": "array" })), "unknown[]");
    assert_eq!(ts(json!({ "type": "array", "items": false })), "never[]");
    let schema = json!({ "type": "array", "items": { "type": ["string", "number"] } });
    assert_eq!(ts(schema), "(string | number)[]");
    let schema = json!({
        "type": "array",
        "items": { "type": "object", "properties": { "a": { "type": "string" } } }
    });
    assert_eq!(ts(schema), "{\n    a?: string;\n}[]");
}

#[test]
fn objects_mark_optional_properties_and_quote_names_that_are_not_identifiers() {
    let schema = json!({
        "type": "object",
        "properties": {
            "\"q\n": { "type": "string" },
            "$x": { "type": "boolean" },
            "2x": { "type": "string" },
            "a-b": { "type": "string" },
            "delete": { "type": "string" },
            "id": { "type": "integer" }
        },
        "required": ["id", "2x"]
    });
    let expected = concat!(
        "{\n",
        "    \"\\\"q\\n\"?: string;\n",
        "    $x?: boolean;\n",
        "    \"2x\": string;\n",
        "    \"a-b\"?: string;\n",
        "    delete?: string;\n",
        "    id: number;\n",
        "}",
    );
    assert_eq!(ts(schema), expected);
}

#[test]
fn boolean_property_schemas_are_unknown_and_never() {
    let schema = json!({
        "type": "object",
        "properties": { "any": true, "none": false },
        "required": ["none"]
    });
    assert_eq!(ts(schema), "{\n    any?: unknown;\n    none: never;\n}");
}

#[test]
fn properties_have_jsdoc_for_description_and_format() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": { "type": "string", "description": "The a" },
            "b": { "type": "string", "format": "date-time" },
            "c": { "type": "string", "description": "Line one\nline two */ end", "format": "uri" },
            "d": { "type": "string", "description": "  \n " },
            "e": { "description": "  padded\r\n" }
        }
    });
    let expected = concat!(
        "{\n",
        "    /** The a */\n",
        "    a?: string;\n",
        "    /** @format date-time */\n",
        "    b?: string;\n",
        "    /**\n",
        "     * Line one line two *\\/ end\n",
        "     * @format uri\n",
        "     */\n",
        "    c?: string;\n",
        "    d?: string;\n",
        "    /** padded */\n",
        "    e?: unknown;\n",
        "}",
    );
    assert_eq!(ts(schema), expected);
}

#[test]
fn nested_objects_indent_four_spaces_per_level() {
    let schema = json!({
        "type": "object",
        "properties": {
            "outer": {
                "type": "object",
                "description": "Outer",
                "properties": { "inner": { "type": "string", "description": "Inner" } },
                "required": ["inner"]
            }
        }
    });
    let expected = concat!(
        "{\n",
        "    /** Outer */\n",
        "    outer?: {\n",
        "        /** Inner */\n",
        "        inner: string;\n",
        "    };\n",
        "}",
    );
    assert_eq!(ts(schema), expected);
}

#[test]
fn additional_properties_add_an_index_signature() {
    let schema = json!({ "type": "object", "additionalProperties": true });
    assert_eq!(ts(schema), "{\n    [key: string]: unknown;\n}");
    let schema = json!({ "type": "object", "additionalProperties": {} });
    assert_eq!(ts(schema), "{\n    [key: string]: unknown;\n}");
    let schema = json!({
        "type": "object",
        "properties": { "a": { "type": "string" } },
        "additionalProperties": { "type": "number" }
    });
    assert_eq!(ts(schema), "{\n    a?: string;\n    [key: string]: number;\n}");
}

#[test]
fn an_object_without_lines_is_empty_only_when_closed() {
    assert_eq!(ts(json!({ "type": "object", "additionalProperties": false })), "{}");
    let schema = json!({ "type": "object", "properties": {}, "additionalProperties": false });
    assert_eq!(ts(schema), "{}");
    assert_eq!(ts(json!({ "type": "object" })), "Record<string, unknown>");
    assert_eq!(ts(json!({ "type": "object", "properties": {} })), "Record<string, unknown>");
}

#[test]
fn properties_without_a_type_make_an_object() {
    let schema = json!({ "properties": { "a": { "type": "string" } } });
    assert_eq!(ts(schema), "{\n    a?: string;\n}");
}

#[test]
fn type_arrays_are_unions() {
    assert_eq!(ts(json!({ "type": ["string", "null"] })), "string | null");
    let schema = json!({ "type": ["integer", "array", "object", "boolean", "foo", 1] });
    assert_eq!(
        ts(schema),
        "number | unknown[] | Record<string, unknown> | boolean | unknown | unknown"
    );
}

#[test]
fn anything_else_is_unknown() {
    assert_eq!(ts(json!({})), "unknown");
    assert_eq!(ts(json!({ "type": "foo" })), "unknown");
    assert_eq!(ts(json!({ "description": "only words" })), "unknown");
    assert_eq!(ts(json!(42)), "unknown");
    assert_eq!(ts(json!(null)), "unknown");
}

#[test]
fn refs_resolve_json_pointers_into_the_root() {
    let schema = json!({
        "type": "object",
        "properties": { "user": { "$ref": "#/$defs/User" } },
        "$defs": {
            "User": {
                "type": "object",
                "properties": { "name": { "type": "string" } },
                "required": ["name"]
            }
        }
    });
    assert_eq!(ts(schema), "{\n    user?: {\n        name: string;\n    };\n}");
    let schema = json!({ "anyOf": [{ "type": "string" }, { "$ref": "#/anyOf/0" }] });
    assert_eq!(ts(schema), "string | string");
}

#[test]
fn ref_pointers_decode_tilde_one_then_tilde_zero() {
    let schema = json!({ "$ref": "#/definitions/a~1b~0c", "definitions": { "a/b~c": { "type": "boolean" } } });
    assert_eq!(ts(schema), "boolean");
    let schema = json!({
        "$ref": "#/definitions/~01",
        "definitions": { "~1": { "type": "number" }, "/": { "type": "string" } }
    });
    assert_eq!(ts(schema), "number");
}

#[test]
fn unresolved_and_external_refs_are_unknown() {
    for reference in [
        json!("#/$defs/Missing"),
        json!("https://example.com/schema.json"),
        json!("other.json#/$defs/A"),
        json!("#A"),
        json!(5),
    ] {
        let schema = json!({ "$ref": reference, "$defs": { "A": { "type": "string" } } });
        assert_eq!(ts(schema), "unknown", "{reference}");
    }
}

#[test]
fn a_ref_cycle_is_unknown_where_it_closes() {
    let schema = json!({ "type": "object", "properties": { "child": { "$ref": "#" } } });
    assert_eq!(ts(schema), "{\n    child?: unknown;\n}");
    let schema = json!({
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": { "next": { "$ref": "#/$defs/Node" }, "value": { "type": "string" } }
            }
        }
    });
    assert_eq!(ts(schema), "{\n    next?: unknown;\n    value?: string;\n}");
}

#[test]
fn schemas_at_depth_twenty_are_unknown() {
    let string = json!({ "type": "string" });
    assert_eq!(ts(nested_arrays(19, string.clone())), format!("string{}", "[]".repeat(19)));
    assert_eq!(ts(nested_arrays(20, string.clone())), format!("unknown{}", "[]".repeat(20)));
    assert_eq!(ts(nested_arrays(25, string)), format!("unknown{}", "[]".repeat(20)));
}

#[test]
fn nullable_appends_null_except_to_unknown_and_never() {
    assert_eq!(ts(json!({ "type": "string", "nullable": true })), "string | null");
    assert_eq!(ts(json!({ "type": "string", "nullable": "true" })), "string");
    assert_eq!(ts(json!({ "type": "object", "nullable": true })), "Record<string, unknown> | null");
    assert_eq!(ts(json!({ "type": ["string"], "nullable": true })), "string | null");
    assert_eq!(ts(json!({ "type": "null", "nullable": true })), "null");
    assert_eq!(ts(json!({ "nullable": true })), "unknown");
    assert_eq!(ts(json!({ "enum": [], "nullable": true })), "never");
    let schema =
        json!({ "$ref": "#/$defs/S", "nullable": true, "$defs": { "S": { "type": "number" } } });
    assert_eq!(ts(schema), "number | null");
    let schema = json!({ "type": "array", "items": { "type": "string", "nullable": true } });
    assert_eq!(ts(schema), "(string | null)[]");
}
