// Comforts for the marketplace pages; every form works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Filter menus apply as soon as they change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // Characters left in a review.
  for (const area of document.querySelectorAll("textarea[data-counter]")) {
    const counter = document.getElementById(area.dataset.counter);
    const update = () => {
      const left = area.maxLength - area.value.length;
      counter.textContent = `${left} characters left`;
    };
    area.addEventListener("input", update);
    update();
  }
  // Ask before destructive posts.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
