package demoapp

import (
	"html/template"
	"strings"
)

// pageData is what the product page renders.
type pageData struct {
	*ProductResponse
	Description template.HTML // the product's own HTML (a constant)
}

// Chain lists who answered, for the page footer: grep it with curl.
func (d pageData) Chain() string {
	parts := []string{d.ServedBy}
	if d.Details != nil {
		parts = append(parts, d.Details.ServedBy)
	}
	if d.Reviews != nil {
		parts = append(parts, d.Reviews.ServedBy)
		for _, r := range d.Reviews.Reviews {
			if r.Rating != nil && r.Rating.ServedBy != "" {
				parts = append(parts, r.Rating.ServedBy)
				break
			}
		}
	}
	return strings.Join(parts, " → ")
}

// stars renders a rating as five stars, n of them full.
func stars(n int) string {
	n = min(max(n, 0), 5)
	return strings.Repeat("★", n) + strings.Repeat("☆", 5-n)
}

// pageTemplate is the product page. The lines that matter to curl users
// are plain text: "Reviews served by reviews-v2", the stars, the
// error messages and the "Served by" footer.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"stars": stars}).Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Simple Bookstore App</title>
<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}.box{border:1px solid #ccc;border-radius:4px;padding:.5em 1em;margin:.5em 0}.error{color:#a00}</style>
</head>
<body>
<header><b>BookInfo Sample</b> · {{if .User}}signed in as <b>{{.User}}</b> · <a href="/logout">Sign out</a>{{else}}<form method="post" action="/login" style="display:inline"><input name="username" placeholder="user"> <button>Sign in</button></form>{{end}}</header>
<h1>{{.Title}}</h1>
<p>{{.Description}}</p>
<section class="box">
<h2>Book Details</h2>
{{with .Details}}<dl>
<dt>Type:</dt><dd>{{.Type}}</dd><dt>Pages:</dt><dd>{{.Pages}}</dd><dt>Publisher:</dt><dd>{{.Publisher}}</dd>
<dt>Language:</dt><dd>{{.Language}}</dd><dt>ISBN-10:</dt><dd>{{.ISBN10}}</dd><dt>ISBN-13:</dt><dd>{{.ISBN13}}</dd>
</dl>
<p>Details served by {{.ServedBy}}</p>{{else}}<p class="error">{{.DetailsError}}</p>{{end}}
</section>
<section class="box">
<h2>Book Reviews</h2>
{{with .Reviews}}{{range .Reviews}}<blockquote><p>{{.Text}}</p><small>{{.Reviewer}}</small>
{{with .Rating}}{{if .Error}}<p class="error">{{.Error}}</p>{{else}}<p style="color:{{.Color}}">{{.Color}} stars: {{stars .Stars}}</p>{{end}}{{end}}</blockquote>
{{end}}<p>Reviews served by {{.ServedBy}}</p>{{else}}<p class="error">{{.ReviewsError}}</p>{{end}}
</section>
<footer>Served by {{.Chain}}</footer>
</body>
</html>
`))
