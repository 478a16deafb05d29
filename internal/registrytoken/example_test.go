package registrytoken_test

import (
	"fmt"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

func ExampleParseScope() {
	req, err := registrytoken.ParseScope("repository:buildsets/b1/app:pull,push registry:catalog:*")
	if err != nil {
		panic(err)
	}
	granted := []registrytoken.Access{{Type: "repository", Name: "buildsets/b1/app", Actions: []string{"push", "pull", "delete"}}}
	for _, a := range registrytoken.Intersect(req, granted) {
		fmt.Println(a)
	}
	// Output:
	// repository:buildsets/b1/app:push,pull
}
