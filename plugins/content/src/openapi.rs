//! `GET /api/content/openapi.json`: an OpenAPI 3.1 document generated from the current types.

use serde_json::{Map, Value, json};
use ucms_sdk::{Request, Response};

use crate::ApiResult;
use crate::schema::{Cardinality, ContentType, Field, FieldType};
use crate::store;

fn field_schema(f: &Field) -> Value {
    match f.kind {
        FieldType::ShortText | FieldType::LongText | FieldType::Slug => {
            let mut s = json!({"type": "string"});
            if let Some(m) = f.max_length {
                s["maxLength"] = json!(m);
            }
            if let Some(m) = f.min_length {
                s["minLength"] = json!(m);
            }
            s
        }
        FieldType::RichText if f.format.as_deref() == Some("blocks") => {
            json!({"type": "array", "items": {"type": "object", "required": ["type"]}})
        }
        FieldType::RichText => json!({"type": "string", "contentMediaType": "text/markdown"}),
        FieldType::Integer => with_range(json!({"type": "integer"}), f),
        FieldType::Decimal => with_range(json!({"type": "number"}), f),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Enumeration => json!({"type": "string", "enum": f.values}),
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Url => json!({"type": "string", "format": "uri"}),
        FieldType::Json => json!({}),
        FieldType::Taxonomy if f.multiple => {
            json!({"type": "array", "items": {"type": "string", "description": format!("a term of '{}'", f.vocabulary.as_deref().unwrap_or_default())}})
        }
        FieldType::Taxonomy => {
            json!({"type": "string", "description": format!("a term of '{}'", f.vocabulary.as_deref().unwrap_or_default())})
        }
        FieldType::Seo => json!({"type": "object", "additionalProperties": false, "properties": {
            "meta-title": {"type": "string", "maxLength": crate::schema::META_TITLE_MAX},
            "meta-description": {"type": "string", "maxLength": crate::schema::META_DESCRIPTION_MAX},
            "canonical-url": {"type": "string", "format": "uri"},
            "noindex": {"type": "boolean"}}}),
        FieldType::Media => {
            json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}, "content-type": {"type": "string"}, "alt": {"type": "string"}}})
        }
        FieldType::Relation => {
            let target = f.target.clone().unwrap_or_default();
            let one = json!({"oneOf": [{"type": "string", "description": format!("the id of a '{target}' entry")}, {"$ref": format!("#/components/schemas/{target}")}]});
            if f.cardinality == Some(Cardinality::OneToOne) {
                one
            } else {
                json!({"type": "array", "items": one})
            }
        }
        FieldType::Component => {
            let obj = object(f.fields.as_deref().unwrap_or_default());
            if f.repeatable {
                json!({"type": "array", "items": obj})
            } else {
                obj
            }
        }
        FieldType::DynamicZone => {
            let blocks: Vec<Value> = f
                .blocks
                .iter()
                .flatten()
                .map(|(name, fields)| {
                    let mut o = object(fields);
                    o["properties"]["__block"] = json!({"const": name});
                    o
                })
                .collect();
            json!({"type": "array", "items": {"oneOf": blocks}})
        }
    }
}

fn with_range(mut s: Value, f: &Field) -> Value {
    if let Some(m) = &f.min {
        s["minimum"] = m.clone();
    }
    if let Some(m) = &f.max {
        s["maximum"] = m.clone();
    }
    s
}

fn object(fields: &[Field]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        props.insert(f.name.clone(), field_schema(f));
        if f.required {
            required.push(f.name.clone());
        }
    }
    json!({"type": "object", "properties": props, "required": required})
}

fn entry_schema(ty: &ContentType) -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"const": ty.name},
            "status": {"enum": ["draft", "published", "changed"]},
            "locale": {"enum": ty.locales},
            "fields": object(&ty.fields),
            "created-at": {"type": "string", "format": "date-time"},
            "updated-at": {"type": "string", "format": "date-time"},
            "published-at": {"type": ["string", "null"], "format": "date-time"},
            "created-by": {"type": ["string", "null"]},
        }
    })
}

pub fn document(_req: &Request) -> ApiResult<Response> {
    let types = store::all_types()?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let param = |name: &str, description: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description});
    let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}}});
    for ty in types.values() {
        schemas.insert(ty.name.clone(), entry_schema(ty));
        let entry_ref = json!({"$ref": format!("#/components/schemas/{}", ty.name)});
        let input = json!({"type": "object", "required": ["fields"], "properties": {"fields": object(&ty.fields)}});
        paths.insert(
            format!("/api/content/{}", ty.name),
            json!({
                "get": {
                    "summary": format!("List {} entries", ty.display_name.clone().unwrap_or(ty.name.clone())),
                    "parameters": [
                        param("filters[field][$op]", "filters: $eq $ne $lt $lte $gt $gte $in $notIn $contains $containsi $startsWith $endsWith $null $notNull $between, $and/$or/$not"),
                        param("sort", "field:asc,field:desc"),
                        param("fields", "comma-separated field names"),
                        param("populate", "relation names, two levels at most (a.b)"),
                        param("page", "from 1"), param("page-size", "1-100"), param("cursor", "meta.next-cursor"),
                        param("locale", "one of the type's locales"), param("status", "published or draft"), param("q", "full-text search"),
                    ],
                    "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"type": "object", "properties": {"data": {"type": "array", "items": entry_ref}, "meta": {"type": "object"}}}}}}, "304": {"description": "not modified"}, "400": error}
                },
                "post": {
                    "summary": "Create a draft",
                    "requestBody": {"content": {"application/json": {"schema": input}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"type": "object", "properties": {"data": entry_ref}}}}}, "422": error}
                }
            }),
        );
        paths.insert(
            format!("/api/content/{}/{{id}}", ty.name),
            json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "an entry id or slug"}],
                "get": {"summary": "One entry", "responses": {"200": {"description": "the entry", "content": {"application/json": {"schema": {"type": "object", "properties": {"data": entry_ref}}}}}, "404": error}},
                "put": {"summary": "Change the draft", "requestBody": {"content": {"application/json": {"schema": input}}}, "responses": {"200": {"description": "changed"}, "422": error}},
                "delete": {"summary": "Delete", "responses": {"204": {"description": "deleted"}, "409": error}}
            }),
        );
    }
    schemas.insert(
        "error".into(),
        json!({"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "fields": {"type": "object"}}}}}),
    );
    Ok(Response::json(&json!({
        "openapi": "3.1.0",
        "info": {"title": "Content delivery API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    })))
}
