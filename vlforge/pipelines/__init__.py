"""Ray execution of recipes: clean, synthdog, render. The only package that imports ray."""
