//! Derive macros for `gradlab-nn`: `#[derive(Module)]` writes a module's bookkeeping
//! (children, parameters, buffers, generators, train/eval flags, all named after the
//! struct's fields) and `#[derive(Vars)]` flattens an input or output struct into its
//! `Var`s for hooks. Use them through `nn` (`#[derive(nn::Module)]`), which documents them.
//!
//! Dispatch is by trait, not by guessing from syntax: every field's type must implement
//! `nn::module::Visit<T>` (parameters, buffers, generators, modes, `Option`s of those,
//! every module type, configuration types), so a field of any other type is a compile
//! error that names it, unless marked `#[module(skip)]`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, parse_quote, Data, DeriveInput, Expr, Fields, GenericParam, Generics, Ident,
    Lifetime, Path, Type, TypeParamBound, WherePredicate,
};

/// `#[derive(Module)]`: see `nn::Module` (the derive) for the attributes.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    module_impl(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `#[derive(Vars)]`: see `nn::Vars` (the derive).
#[proc_macro_derive(Vars, attributes(vars))]
pub fn derive_vars(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    vars_impl(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Struct-level options shared by both derives.
#[derive(Default)]
struct Options {
    krate: Option<Path>,
    activation: bool,
    type_name: Option<Expr>,
}

fn parse_struct_options(input: &DeriveInput, attr_name: &str) -> syn::Result<Options> {
    let mut opts = Options::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                opts.krate = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("activation") && attr_name == "module" {
                opts.activation = true;
            } else if meta.path.is_ident("type_name") && attr_name == "module" {
                opts.type_name = Some(meta.value()?.parse()?);
            } else {
                let allowed = if attr_name == "module" {
                    "`crate = path`, `activation`, `type_name = expr`"
                } else {
                    "`crate = path`"
                };
                return Err(meta.error(format!(
                    "unknown #[{attr_name}(..)] option on a struct; expected {allowed}"
                )));
            }
            Ok(())
        })?;
    }
    Ok(opts)
}

/// Whether a field carries `#[<attr_name>(skip)]`.
fn is_skipped(field: &syn::Field, attr_name: &str) -> syn::Result<bool> {
    let mut skip = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown #[{attr_name}(..)] option on a field; expected `skip`"
                )))
            }
        })?;
    }
    Ok(skip)
}

/// The struct's fields as (accessor, name, type), skipped ones left out.
fn fields(input: &DeriveInput, attr_name: &str) -> syn::Result<Vec<(TokenStream2, String, Type)>> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Module)] and #[derive(Vars)] support structs only",
        ));
    };
    let mut out = Vec::new();
    match &data.fields {
        Fields::Named(named) => {
            for f in &named.named {
                if is_skipped(f, attr_name)? {
                    continue;
                }
                let ident = f.ident.as_ref().expect("named field");
                // Raw identifiers (`r#type`) name the field `type`, as PyTorch would.
                let name = ident.to_string().trim_start_matches("r#").to_string();
                out.push((quote!(#ident), name, f.ty.clone()));
            }
        }
        Fields::Unnamed(unnamed) => {
            for (i, f) in unnamed.unnamed.iter().enumerate() {
                if is_skipped(f, attr_name)? {
                    continue;
                }
                let index = syn::Index::from(i);
                out.push((quote!(#index), i.to_string(), f.ty.clone()));
            }
        }
        Fields::Unit => {}
    }
    Ok(out)
}

/// The struct's type parameter that is the float type: one bounded by `Float` (in its
/// declaration or a where-clause). Only the *float* is found by name; what each field
/// is, is decided by traits.
fn float_param(generics: &Generics) -> Option<Ident> {
    let is_float = |b: &TypeParamBound| match b {
        TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == "Float"),
        _ => false,
    };
    for p in generics.type_params() {
        if p.bounds.iter().any(is_float) {
            return Some(p.ident.clone());
        }
    }
    let where_clause = generics.where_clause.as_ref()?;
    for pred in &where_clause.predicates {
        if let WherePredicate::Type(t) = pred {
            if let Type::Path(tp) = &t.bounded_ty {
                if let Some(id) = tp.path.get_ident() {
                    let declared = generics.type_params().any(|p| &p.ident == id);
                    if declared && t.bounds.iter().any(is_float) {
                        return Some(id.clone());
                    }
                }
            }
        }
    }
    None
}

/// Whether `ty` mentions any of `params` (so a bound on it is not decidable at the
/// definition and must become a where-clause).
fn mentions(ty: &Type, params: &[Ident]) -> bool {
    fn walk(tokens: TokenStream2, params: &[Ident]) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => params.contains(&i),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    walk(quote!(#ty), params)
}

fn module_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let opts = parse_struct_options(input, "module")?;
    let nn = opts.krate.clone().unwrap_or_else(|| parse_quote!(::nn));
    let fields = fields(input, "module")?;
    let name = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();

    // The float type: the struct's own `T: Float`, or a fresh parameter, so that both
    // `struct Block<T: Float> { fc: Linear<T> }` and `struct Net { fc: Linear<f32> }`
    // get one impl generic over the float, pinned by their fields.
    let mut generics = input.generics.clone();
    let (float, fresh) = match float_param(&input.generics) {
        Some(t) => (quote!(#t), false),
        None => {
            let t = Ident::new("__NnFloat", Span::call_site());
            generics
                .params
                .push(parse_quote!(#t: #nn::__private::Float));
            (quote!(#t), true)
        }
    };
    // With the struct's own float, a field that mentions no other type parameter is
    // checked right here, and a wrong field type is an error on that field. Fields
    // that mention other parameters (or every field, with a fresh float) become
    // where-clauses.
    let others: Vec<Ident> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .filter(|id| fresh || quote!(#id).to_string() != float.to_string())
        .collect();
    {
        let wc = generics.make_where_clause();
        for (_, _, ty) in &fields {
            if fresh || mentions(ty, &others) {
                wc.predicates
                    .push(parse_quote!(#ty: #nn::module::Visit<#float>));
            }
        }
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();

    let visits = fields.iter().map(|(access, fname, ty)| {
        quote_spanned! {ty.span()=>
            <#ty as #nn::module::Visit<#float>>::visit(&self.#access, #fname, __nn_f);
        }
    });
    let activation = opts.activation.then(|| {
        quote! {
            fn activation(&self) -> ::core::option::Option<&dyn #nn::Activation> {
                ::core::option::Option::Some(self)
            }
        }
    });
    let type_name = opts.type_name.as_ref().map(|e| {
        quote! {
            fn type_name(&self) -> &'static str {
                #e
            }
        }
    });
    Ok(quote! {
        impl #impl_generics #nn::Module<#float> for #name #ty_generics #where_clause {
            fn visit_fields<'__nn_s>(
                &'__nn_s self,
                __nn_f: &mut dyn ::core::ops::FnMut(&str, #nn::module::Field<'__nn_s, #float>),
            ) {
                #(#visits)*
            }
            #activation
            #type_name
        }

        impl #impl_generics #nn::module::Visit<#float> for #name #ty_generics #where_clause {
            fn visit<'__nn_s>(
                &'__nn_s self,
                name: &str,
                f: &mut dyn ::core::ops::FnMut(&str, #nn::module::Field<'__nn_s, #float>),
            ) {
                f(name, #nn::module::Field::Module(self))
            }
        }
    })
}

fn vars_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let opts = parse_struct_options(input, "vars")?;
    let nn = opts.krate.unwrap_or_else(|| parse_quote!(::nn));
    let fields = fields(input, "vars")?;
    let name = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();

    let mut generics = input.generics.clone();
    // The tape lifetime: the struct's own (an input holds `Var<'t, T>`s), else a fresh one.
    let tape: Lifetime = match input.generics.lifetimes().next() {
        Some(l) => l.lifetime.clone(),
        None => {
            let l = Lifetime::new("'__nn_t", Span::call_site());
            generics
                .params
                .insert(0, GenericParam::Lifetime(parse_quote!(#l)));
            l
        }
    };
    let float = match float_param(&input.generics) {
        Some(t) => quote!(#t),
        None => {
            let t = Ident::new("__NnFloat", Span::call_site());
            generics
                .params
                .push(parse_quote!(#t: #nn::__private::Float));
            quote!(#t)
        }
    };
    {
        let wc = generics.make_where_clause();
        for (_, _, ty) in &fields {
            wc.predicates
                .push(parse_quote!(#ty: #nn::Vars<#tape, #float>));
        }
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let visits = fields.iter().map(|(access, _, ty)| {
        quote_spanned! {ty.span()=>
            <#ty as #nn::Vars<#tape, #float>>::visit_vars(&self.#access, __nn_f);
        }
    });
    Ok(quote! {
        impl #impl_generics #nn::Vars<#tape, #float> for #name #ty_generics #where_clause {
            fn visit_vars(
                &self,
                __nn_f: &mut dyn ::core::ops::FnMut(#nn::__private::Var<#tape, #float>),
            ) {
                #(#visits)*
            }
        }
    })
}
