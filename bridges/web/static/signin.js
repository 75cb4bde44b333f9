// The sign-in page: use the link at once (the button stays for when scripts are slow).
const form = document.getElementById("signin");
if (form) form.requestSubmit();
