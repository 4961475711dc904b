//! Routes and their OpenAPI operations registered together, so the served spec is the
//! route table: every `Api::route` adds the axum route and its documented operation.

use crate::envelope::Meta;
use crate::error::ErrorItem;
use crate::state::AppState;
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    RefOr, Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

type Schemas = Vec<(String, RefOr<Schema>)>;

/// The documentation of one operation.
pub struct Doc {
    tag: String,
    summary: String,
    body: Option<RefOr<Schema>>,
    data: Option<RefOr<Schema>>,
    public: bool,
    /// A success that is not the JSON envelope (metrics text, the snapshot file, HTML).
    raw: Option<&'static str>,
    /// The success status: 200, or 201 for a create.
    status: &'static str,
    /// Other answers that are not failures: (status, description).
    also: Vec<(&'static str, &'static str)>,
    /// Query parameters: (name, required).
    query: Vec<(&'static str, bool)>,
    /// The values a query parameter takes, for those taking only a few.
    closed: Vec<(&'static str, &'static [&'static str])>,
    /// Bodies accepted besides the JSON one, as text (a CSV deck).
    text_bodies: Vec<&'static str>,
    schemas: Schemas,
}

impl Doc {
    pub fn new(tag: impl Into<String>, summary: impl Into<String>) -> Self {
        Doc {
            tag: tag.into(),
            summary: summary.into(),
            body: None,
            data: None,
            public: false,
            raw: None,
            status: "200",
            also: Vec::new(),
            query: Vec::new(),
            closed: Vec::new(),
            text_bodies: Vec::new(),
            schemas: Vec::new(),
        }
    }

    fn named<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.schemas.push((T::name().into(), T::schema()));
        T::schemas(&mut self.schemas);
        Ref::from_schema_name(T::name()).into()
    }

    /// JSON request body of type `T`.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some(self.named::<T>());
        self
    }

    /// `data` is one `T`.
    pub fn returns<T: ToSchema>(mut self) -> Self {
        self.data = Some(self.named::<T>());
        self
    }

    /// `data` is a list of `T`, paged.
    pub fn returns_list<T: ToSchema>(mut self) -> Self {
        let item = self.named::<T>();
        self.data = Some(ArrayBuilder::new().items(item).into());
        self.query.extend([("limit", false), ("cursor", false)]);
        self
    }

    /// Optional query parameters.
    pub fn query(mut self, names: &[&'static str]) -> Self {
        self.query.extend(names.iter().map(|n| (*n, false)));
        self
    }

    /// The values each named query parameter takes (any other is a 400).
    pub fn closed(mut self, values: &[(&'static str, &'static [&'static str])]) -> Self {
        self.closed.extend_from_slice(values);
        self
    }

    /// Query parameters without which the request is refused.
    pub fn required_query(mut self, names: &[&'static str]) -> Self {
        self.query.extend(names.iter().map(|n| (*n, true)));
        self
    }

    /// Also accepts a body of `content_type`, taken as text.
    pub fn text_body(mut self, content_type: &'static str) -> Self {
        self.text_bodies.push(content_type);
        self
    }

    /// Answers `content_type` rather than the envelope.
    pub fn raw(mut self, content_type: &'static str) -> Self {
        self.raw = Some(content_type);
        self
    }

    /// Answers 201 Created.
    pub fn created(mut self) -> Self {
        self.status = "201";
        self
    }

    /// May also answer `status` (without a body), meaning `description`.
    pub fn also(mut self, status: &'static str, description: &'static str) -> Self {
        self.also.push((status, description));
        self
    }

    /// Needs no API key.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }
}

/// The envelope around `data`.
fn envelope(data: Option<RefOr<Schema>>) -> RefOr<Schema> {
    let data = data.unwrap_or_else(|| ObjectBuilder::new().into());
    ObjectBuilder::new()
        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("data", data)
        .property("meta", Ref::from_schema_name(Meta::name()))
        .property(
            "errors",
            ArrayBuilder::new().items(Ref::from_schema_name(ErrorItem::name())),
        )
        .required("success")
        .required("errors")
        .into()
}

pub struct Api {
    router: Router<AppState>,
    paths: Paths,
    schemas: Schemas,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            router: Router::new(),
            paths: Paths::new(),
            schemas: vec![
                (Meta::name().into(), Meta::schema()),
                (ErrorItem::name().into(), ErrorItem::schema()),
            ],
        }
    }
}

impl Api {
    pub fn route(
        mut self,
        method: HttpMethod,
        path: &str,
        handler: MethodRouter<AppState>,
        doc: Doc,
    ) -> Self {
        self.router = self.router.route(path, handler);
        let success = match doc.raw {
            Some(ty) => ResponseBuilder::new()
                .description("success")
                .content(ty, Content::new(None::<RefOr<Schema>>)),
            None => ResponseBuilder::new()
                .description("success")
                .content("application/json", Content::new(Some(envelope(doc.data)))),
        };
        let mut op = OperationBuilder::new()
            .tag(doc.tag)
            .summary(Some(doc.summary))
            .response(doc.status, success);
        for (status, description) in doc.also {
            op = op.response(status, ResponseBuilder::new().description(description));
        }
        op = op.response(
            "default",
            ResponseBuilder::new()
                .description("failure: errors[] names the code and field")
                .content("application/json", Content::new(Some(envelope(None)))),
        );
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        for (name, required) in doc.query {
            let required = if required {
                Required::True
            } else {
                Required::False
            };
            let values = doc.closed.iter().find(|(n, _)| *n == name);
            let schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(values.map(|(_, v)| v.iter().copied()));
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(required)
                    .schema(Some(schema)),
            );
        }
        if let Some(body) = doc.body {
            let mut request = RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", Content::new(Some(body)));
            for ty in doc.text_bodies {
                let text = ObjectBuilder::new().schema_type(Type::String);
                request = request.content(ty, Content::new(Some(text)));
            }
            op = op.request_body(Some(request.build()));
        }
        op = if doc.public {
            op.securities(Some(Vec::<SecurityRequirement>::new()))
        } else {
            op.security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        };
        self.paths
            .add_path_operation(path, vec![method], op.build());
        self.schemas.extend(doc.schemas);
        self
    }

    /// Builds the document, served (as part of itself) at `spec_path`.
    pub fn finish(self, spec_path: &str) -> (Router<AppState>, OpenApi) {
        let handler = MethodRouter::new();
        let me = self.route(
            HttpMethod::Get,
            spec_path,
            handler,
            Doc::new("System", "This OpenAPI document")
                .raw("application/json")
                .public(),
        );
        let components = ComponentsBuilder::new()
            .schemas_from_iter(me.schemas)
            .security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            )
            .build();
        let doc = OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("WARP API")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "Wholesale Accounting, Routing and Provisioning: every answer is \
                         the envelope {success, data, meta, errors[]}",
                    )),
            )
            .paths(me.paths)
            .components(Some(components))
            .build();
        let spec = serde_json::to_value(&doc).unwrap_or_default();
        let router = me
            .router
            .route(spec_path, get(move || async move { Json(spec) }));
        (router, doc)
    }
}
