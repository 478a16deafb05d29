// Package imageset manages container image sets as TripleO defines them: a
// Jinja2 template (container_images_template entries with imagename,
// image_source, params and services) rendered with parameters (namespace,
// name_prefix, name_suffix, tag, ...) into a concrete list of images.
//
// It lists and renders sets (with a Heat environment file that points every
// image parameter at its reference), discovers in a registry which
// immutable tag a moving tag points at, and promotes a whole set from one
// tag to another, all or nothing.
//
// Templates are rendered by github.com/nikolalohinski/gonja/v2; {% set %},
// {% if %}, {% for %}, {% include %} and filters such as default work as in
// Jinja2. A parameter the template prints without setting or defaulting it
// must be given ([ErrMissingParameter]); a --set or parameters-file key the
// template never reads is an error ([ErrUnknownParameter]). Keys of a
// ContainerImagePrepare entry's set that the template does not read are
// ignored, since TripleO writes every key for every template version.
//
// The package logs nothing unless given a *slog.Logger.
package imageset
