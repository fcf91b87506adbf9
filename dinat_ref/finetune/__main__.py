"""``python -m dinat_ref.finetune`` / ``torchrun -m dinat_ref.finetune``."""

from dinat_ref.finetune import main

raise SystemExit(main())
